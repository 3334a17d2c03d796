"""The benchmark's Python peers (bench/peers.py) ask the port they are given and count
what they are told: against an in-process blocklist on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from bench import peers
from tests.unit.loopback_dns import LoopbackServer, serving

pytest.importorskip("aiodns")
pytest.importorskip("pydnsbl")

ZONES = ["bl.example", "two.example"]
IPS = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
#: Listed: 192.0.2.2 on bl.example, 192.0.2.3 on both.
LISTED = {"2.2.0.192.bl.example", "3.2.0.192.bl.example", "3.2.0.192.two.example"}


def blocklist(query: dns.message.Message) -> dns.message.Message:
    question = query.question[0]
    reply = dns.message.make_response(query)
    if question.name.to_text().rstrip(".") in LISTED \
            and question.rdtype == dns.rdatatype.A:
        reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "127.0.0.2"))
    else:
        reply.set_rcode(dns.rcode.NXDOMAIN)
    return reply


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[LoopbackServer, int]]:
    async with serving(blocklist) as served:
        yield served


def names() -> list[str]:
    return [f"{'.'.join(reversed(ip.split('.')))}.{zone}" for ip in IPS for zone in ZONES]


async def test_aiodns_asks_the_loopback_port_and_counts_its_answers(
        upstream: tuple[LoopbackServer, int]) -> None:
    server, port = upstream
    result = await peers.run_aiodns(names(), port, concurrency=2, timeout=2.0)
    assert result["questions"] == 6
    assert result["outcomes"] == {"ok": 3, "nxdomain": 3}
    # Each name asked once, of this server: no search domains, no other resolver.
    assert sorted(q.rstrip(".") for q in server.queries) == sorted(names())
    assert result["queries_per_second"] > 0 and result["peak_rss_mb"] > 0


async def test_pydnsbl_is_pointed_at_the_loopback_port_before_it_asks(
        upstream: tuple[LoopbackServer, int]) -> None:
    server, port = upstream
    result = await peers.run_pydnsbl(IPS, ZONES, port, concurrency=2, timeout=2.0)
    assert result["questions"] == 6
    assert result["outcomes"] == {"ok": 3, "nxdomain": 3, "error": 0}
    # pydnsbl built its own resolver from resolv.conf: every question still came here.
    assert sorted(q.rstrip(".") for q in server.queries) == sorted(names())


async def test_a_pydnsbl_without_the_resolver_it_replaces_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pydnsbl

    class Renamed(pydnsbl.DNSBLIpChecker):  # type: ignore[misc]  # its resolver renamed
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            self.resolver = self.__dict__.pop("_resolver")

    monkeypatch.setattr(pydnsbl, "DNSBLIpChecker", Renamed)
    with pytest.raises(RuntimeError, match="no aiodns _resolver"):
        await peers.run_pydnsbl(IPS, ZONES, 1, concurrency=2, timeout=2.0)


def test_the_outcome_names_follow_c_ares() -> None:
    import pycares

    codes = {name: getattr(pycares.errno, f"ARES_E{name}") for name in
             ("NODATA", "SERVFAIL", "NOTFOUND", "REFUSED", "CONNREFUSED", "TIMEOUT")}
    assert {peers._ARES_OUTCOMES[c] for c in codes.values()} == {
        "nodata", "servfail", "nxdomain", "refused", "connection refused", "timeout"}
    assert peers._ARES_OUTCOMES[codes["NOTFOUND"]] == "nxdomain"
    assert peers._ARES_OUTCOMES[codes["TIMEOUT"]] == "timeout"
