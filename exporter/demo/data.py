"""The bundled demo zones, and the answers a recursive resolver would give from them.

This half of the demo does no I/O beyond reading the package's own files:
:class:`ZoneData` turns a question into an rcode and RRsets, so its DNS
semantics (CNAME chains, wildcards, empty non-terminals, negative answers
with the zone's SOA) can be pinned down without sockets. The responder puts
it on the wire.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from string import Template

import dns.name
import dns.node
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

#: Bundled zone files are ``<origin>.zone``; the origin comes from the file name.
ZONE_SUFFIX = ".zone"
CONFIG_TEMPLATE = "config.yml"

#: A resolver gives up on longer CNAME chains; so do we (and loops end here).
MAX_CNAME_CHAIN = 8

_WILDCARD = dns.name.Name((b"*",))


def load_demo_zones() -> list[dns.zone.Zone]:
    """Parse every bundled ``*.zone`` file (absolute names, origin from the file name)."""
    zones: list[dns.zone.Zone] = []
    package = importlib.resources.files(__package__)
    for entry in sorted(package.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(ZONE_SUFFIX):
            continue
        origin = entry.name.removesuffix(ZONE_SUFFIX) + "."
        zones.append(
            dns.zone.from_text(
                entry.read_text(encoding="utf-8"),
                origin=origin,
                relativize=False,
                filename=entry.name,
            )
        )
    return zones


def demo_config_text(responder_port: int, responder_host: str = "127.0.0.1") -> str:
    """The demo's config YAML, pointing the exporter's resolver at the demo responder."""
    if not 1 <= responder_port <= 65535:
        raise ValueError(f"responder port must be 1-65535, got {responder_port}")
    host = str(ipaddress.ip_address(responder_host))
    package = importlib.resources.files(__package__)
    template = Template(package.joinpath(CONFIG_TEMPLATE).read_text(encoding="utf-8"))
    return template.substitute(host=host, port=responder_port)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a resolver would answer: an rcode and the answer and authority sections."""

    rcode: dns.rcode.Rcode
    answer: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()


def _rrset(owner: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    # Owned by the name asked, so a wildcard answer is synthesised (RFC 4592)
    # and the client's letter case (0x20 randomisation) comes back unchanged.
    return dns.rrset.from_rdata_list(owner, rdataset.ttl, list(rdataset))


def _negative_soa(zone: dns.zone.Zone) -> dns.rrset.RRset:
    """The SOA for the authority section of negative answers (RFC 2308 section 3)."""
    assert zone.origin is not None  # loaded with an origin; narrows the type
    rdataset = zone.find_rdataset(zone.origin, dns.rdatatype.SOA)
    soa = rdataset[0]
    # The negative TTL is the smaller of the SOA's own TTL and its MINIMUM.
    ttl = min(rdataset.ttl, soa.minimum)  # type: ignore[attr-defined]
    return dns.rrset.from_rdata(zone.origin, ttl, soa)


class ZoneData:
    """Answers questions from a set of zones as a recursive resolver would.

    The most specific zone holding a name answers for it; a name under no
    zone is refused, so nothing outside the bundled data is ever made up or
    forwarded.
    """

    def __init__(self, zones: Iterable[dns.zone.Zone]) -> None:
        self._zones: dict[dns.name.Name, dns.zone.Zone] = {}
        self._negative: dict[dns.name.Name, dns.rrset.RRset] = {}
        #: Every owner name and all its ancestors: a name in here exists, even
        #: with no records of its own (an empty non-terminal is NODATA, not
        #: NXDOMAIN; RFC 8020), also across zones (bl.example exists because
        #: zen.bl.example does).
        self._existing: set[dns.name.Name] = set()
        for zone in zones:
            origin = zone.origin
            if origin is None:
                raise ValueError("a demo zone needs an origin")
            if origin in self._zones:
                raise ValueError(f"zone {origin} given twice")
            self._zones[origin] = zone
            self._negative[origin] = _negative_soa(zone)
            for name in zone.nodes:
                owner = name if name.is_absolute() else name.derelativize(origin)
                while owner not in self._existing:
                    self._existing.add(owner)
                    if owner == dns.name.root:
                        break
                    owner = owner.parent()

    @property
    def origins(self) -> tuple[dns.name.Name, ...]:
        return tuple(self._zones)

    def zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        """The most specific zone that contains ``name``, if any."""
        candidate = name
        while True:
            zone = self._zones.get(candidate)
            if zone is not None:
                return zone
            if candidate == dns.name.root or len(candidate) == 0:
                return None
            candidate = candidate.parent()

    def _find(self, zone: dns.zone.Zone, name: dns.name.Name) -> tuple[dns.node.Node | None, bool]:
        """The node answering for ``name`` (perhaps a wildcard) and whether the name exists."""
        node = zone.get_node(name)
        if node is not None:
            return node, True
        if name in self._existing:
            return None, True
        # RFC 4592: only the wildcard directly below the closest encloser
        # matches. The zone apex exists, so this walk ends inside the zone.
        encloser = name.parent()
        while encloser not in self._existing:
            encloser = encloser.parent()
        wildcard = zone.get_node(_WILDCARD.concatenate(encloser))
        return wildcard, wildcard is not None

    def resolve(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Resolution:
        """Answer one IN-class question."""
        answer: list[dns.rrset.RRset] = []
        seen: set[dns.name.Name] = set()
        current = qname
        for _ in range(MAX_CNAME_CHAIN + 1):
            zone = self.zone_for(current)
            if zone is None:
                # Asked outside the data: refuse. A CNAME leading out of it is
                # a question we cannot finish, and a resolver says SERVFAIL.
                return Resolution(dns.rcode.SERVFAIL if answer else dns.rcode.REFUSED)
            assert zone.origin is not None
            node, exists = self._find(zone, current)
            negative = (self._negative[zone.origin],)
            if node is None:
                rcode = dns.rcode.NOERROR if exists else dns.rcode.NXDOMAIN
                return Resolution(rcode, tuple(answer), negative)
            if rdtype not in (dns.rdatatype.CNAME, dns.rdatatype.ANY):
                cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
                if cname is not None:
                    # A resolver puts the whole chain in the answer section.
                    answer.append(_rrset(current, cname))
                    seen.add(current)
                    current = cname[0].target  # type: ignore[attr-defined]
                    if current in seen:
                        return Resolution(dns.rcode.SERVFAIL)
                    continue
            if rdtype == dns.rdatatype.ANY:
                found = [_rrset(current, rds) for rds in node.rdatasets]
            else:
                rds = node.get_rdataset(dns.rdataclass.IN, rdtype)
                found = [_rrset(current, rds)] if rds is not None else []
            if not found:
                return Resolution(dns.rcode.NOERROR, tuple(answer), negative)
            return Resolution(dns.rcode.NOERROR, (*answer, *found))
        return Resolution(dns.rcode.SERVFAIL)
