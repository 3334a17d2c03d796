"""The curated built-in blocklists (late 2026), their error codes and delisting pages.

Dead lists that now answer "listed" for everything (SORBS, AHBL, NJABL,
dul.ru and friends) are deliberately absent: adding one would page every
sender at once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from exporter.config import ZoneConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class KnownList:
    zone: str
    type: str  # "ip" or "domain"
    #: Answers that mean "query refused / not for you", not "listed".
    error_codes: tuple[str, ...]
    #: Where a listed sender looks itself up or asks for removal.
    delist_url: str
    #: Return codes and what they mean, for people reading a report.
    codes: tuple[tuple[str, str], ...] = ()


_SPAMHAUS_ERRORS = ("127.255.255.252/32", "127.255.255.254/32", "127.255.255.255/32")

BUILTIN_LISTS: tuple[KnownList, ...] = (
    KnownList(
        "zen.spamhaus.org", "ip", _SPAMHAUS_ERRORS, "https://check.spamhaus.org/",
        (
            ("127.0.0.2", "SBL: Spamhaus SBL data"),
            ("127.0.0.3", "SBL: Spamhaus SBL CSS data"),
            ("127.0.0.4", "XBL: exploited host (CBL)"),
            ("127.0.0.9", "SBL: Spamhaus DROP/EDROP data"),
            ("127.0.0.10", "PBL: ISP-maintained end-user range"),
            ("127.0.0.11", "PBL: Spamhaus-maintained end-user range"),
        ),
    ),
    KnownList(
        "b.barracudacentral.org", "ip", (),
        "https://www.barracudacentral.org/rbl/removal-request",
    ),
    KnownList("bl.spamcop.net", "ip", (), "https://www.spamcop.net/bl.shtml"),
    KnownList("psbl.surriel.com", "ip", (), "https://psbl.org/"),
    KnownList("bl.mailspike.net", "ip", (), "https://mailspike.org/iplookup.html"),
    KnownList(
        "dbl.spamhaus.org", "domain", ("127.0.1.255/32", *_SPAMHAUS_ERRORS),
        "https://check.spamhaus.org/",
    ),
    KnownList("multi.surbl.org", "domain", ("127.0.0.1/32",), "https://surbl.org/surbl-analysis"),
    KnownList("multi.uribl.com", "domain", ("127.0.0.1/32",), "https://admin.uribl.com/"),
)

_BY_ZONE = {k.zone: k for k in BUILTIN_LISTS}

#: For every zone, answers here are errors whatever the zone says (RFC 5782 §2.3 and
#: operators' "query refused" ranges).
UNIVERSAL_ERROR_NETWORK = ipaddress.ip_network("127.255.255.0/24")
LOOPBACK_NETWORK = ipaddress.ip_network("127.0.0.0/8")


def known_list(zone: str) -> KnownList | None:
    return _BY_ZONE.get(zone)


def delist_url(zone: str) -> str:
    known = _BY_ZONE.get(zone)
    return known.delist_url if known else ""


def builtin_zone_configs() -> tuple[ZoneConfig, ...]:
    return tuple(ZoneConfig(zone=k.zone, type=k.type) for k in BUILTIN_LISTS)


def effective_zones(configured: tuple[ZoneConfig, ...], builtin: bool) -> tuple[ZoneConfig, ...]:
    """The zones to query: the user's, or the curated set when they listed none."""
    return builtin_zone_configs() if builtin else configured


def error_networks(zone: ZoneConfig) -> tuple[Network, ...]:
    """The configured error codes plus the known ones for a built-in zone name."""
    known = _BY_ZONE.get(zone.zone)
    texts = set(zone.error_codes) | set(known.error_codes if known else ())
    return tuple(ipaddress.ip_network(t, strict=False) for t in sorted(texts))


def classify_code(code: str, errors: tuple[Network, ...]) -> bool:
    """True when an A answer from a DNSBL is a listing, False when it is an error code."""
    try:
        addr = ipaddress.ip_address(code)
    except ValueError:
        return False
    if addr.version != 4 or addr not in LOOPBACK_NETWORK or addr in UNIVERSAL_ERROR_NETWORK:
        return False
    return not any(addr in net for net in errors)
