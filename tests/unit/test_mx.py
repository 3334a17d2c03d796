"""MxCheck and lookup_mx, on a fake resolver."""

from __future__ import annotations

import logging

import pytest

from exporter.checks.base import CheckContext, Findings, Status, Target
from exporter.checks.mx import HOSTS, VALID, MxCheck, lookup_mx
from exporter.config import Config, DomainConfig
from exporter.dns import Answer, LookupFailed, Outcome
from tests.fakes import FakeResolver

D = "example.com"


class CnameResolver(FakeResolver):
    """A FakeResolver whose answers for some names come at the end of a CNAME chain."""

    def __init__(self, data: dict[tuple[str, str], object], cnames: dict[str, str]) -> None:
        super().__init__(data)  # type: ignore[arg-type]
        self.cnames = cnames

    async def resolve(self, name: str, rdtype: str) -> Answer:
        answer = await super().resolve(name, rdtype)
        if name in self.cnames and answer.answered:
            return answer._replace(canonical_name=self.cnames[name])
        return answer


def ctx(resolver: FakeResolver) -> CheckContext:
    return CheckContext(resolver=resolver, config=Config(), log=logging.getLogger("test"))


async def run(resolver: FakeResolver) -> Findings:
    return await MxCheck().run(Target("mx", D), ctx(resolver))


def values(f: Findings) -> dict[str, float]:
    return {s.metric: s.value for s in f.samples}


def test_every_domain_is_a_target() -> None:
    config = Config(domains=(DomainConfig("a.example"), DomainConfig("b.example")))
    assert [t.key for t in MxCheck().targets(config)] == ["a.example", "b.example"]


async def test_resolving_hosts_are_valid_and_sorted_by_preference() -> None:
    resolver = FakeResolver({
        (D, "MX"): ["20 mx2.example.com", "10 mx1.example.com"],
        ("mx1.example.com", "A"): "192.0.2.25",
        ("mx1.example.com", "AAAA"): "2001:db8::25",
        ("mx2.example.com", "AAAA"): "2001:db8::26",
    })
    result = await lookup_mx(resolver, D)
    assert [h.name for h in result.hosts] == ["mx1.example.com", "mx2.example.com"]
    assert result.hosts[0].addresses == ("192.0.2.25", "2001:db8::25")
    assert result.hosts[0].ipv4 == ("192.0.2.25",) and result.hosts[1].ipv6 == ("2001:db8::26",)
    f = await run(resolver)
    assert values(f) == {HOSTS: 2, VALID: 1}
    assert f.findings[-1].status is Status.PASS


async def test_host_listed_twice_counts_once_at_its_best_preference() -> None:
    resolver = FakeResolver({
        (D, "MX"): ["10 mx.example.com", "20 mx.example.com"],
        ("mx.example.com", "A"): "192.0.2.25",
    })
    result = await lookup_mx(resolver, D)
    assert [(h.name, h.preference) for h in result.hosts] == [("mx.example.com", 10)]


async def test_host_without_addresses_is_invalid() -> None:
    resolver = FakeResolver({
        (D, "MX"): ["10 mx1.example.com", "20 gone.example.com"],
        ("mx1.example.com", "A"): "192.0.2.25",
    })
    f = await run(resolver)
    assert values(f) == {HOSTS: 2, VALID: 0}
    assert any(x.status is Status.FAIL and "gone.example.com" in x.title for x in f.findings)


async def test_null_mx_is_zero_hosts_and_valid() -> None:
    resolver = FakeResolver({(D, "MX"): "0 "})
    result = await lookup_mx(resolver, D)
    assert result.null_mx and result.delivery_hosts == ()
    f = await run(resolver)
    assert values(f) == {HOSTS: 0, VALID: 1}
    assert "null MX" in f.findings[0].title


async def test_null_mx_next_to_other_records_is_invalid() -> None:
    resolver = FakeResolver({
        (D, "MX"): ["0 ", "10 mx.example.com"], ("mx.example.com", "A"): "192.0.2.25",
    })
    f = await run(resolver)
    assert values(f) == {HOSTS: 0, VALID: 0}
    assert f.findings[0].status is Status.FAIL


async def test_no_mx_falls_back_to_the_a_record_and_is_invalid() -> None:
    resolver = FakeResolver({(D, "A"): "192.0.2.80"})
    result = await lookup_mx(resolver, D)
    assert result.implicit_host is not None
    assert [h.addresses for h in result.delivery_hosts] == [("192.0.2.80",)]
    f = await run(resolver)
    assert values(f) == {HOSTS: 0, VALID: 0}
    assert "fall back to the A record" in f.findings[0].title
    assert "null MX" in f.findings[0].fix


async def test_nonexistent_domain_has_no_hosts_and_is_invalid() -> None:
    f = await run(FakeResolver({}))
    assert values(f) == {HOSTS: 0, VALID: 0}
    assert "does not exist" in f.findings[0].title


async def test_ip_literal_exchange_is_invalid_and_not_looked_up() -> None:
    resolver = FakeResolver({(D, "MX"): "10 192.0.2.25"})
    f = await run(resolver)
    assert values(f) == {HOSTS: 1, VALID: 0}
    assert ("192.0.2.25", "A") not in resolver.asked
    assert any("IP address" in x.title for x in f.findings)


async def test_cname_exchange_is_a_warning_but_stays_valid() -> None:
    resolver = CnameResolver({
        (D, "MX"): "10 mail.example.com", ("mail.example.com", "A"): "192.0.2.25",
    }, {"mail.example.com": "real.example.net"})
    result = await lookup_mx(resolver, D)
    assert result.hosts[0].cname_target == "real.example.net"
    f = await run(resolver)
    assert values(f) == {HOSTS: 1, VALID: 1}
    assert any(x.status is Status.WARN and "CNAME" in x.title for x in f.findings)


@pytest.mark.parametrize("failure", [Outcome.TIMEOUT, Outcome.SERVFAIL])
async def test_unanswered_mx_lookup_fails_the_run(failure: Outcome) -> None:
    with pytest.raises(LookupFailed):
        await run(FakeResolver({(D, "MX"): failure}))


@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
async def test_unanswered_host_address_lookup_fails_the_run(rdtype: str) -> None:
    data: dict[tuple[str, str], object] = {
        (D, "MX"): "10 mx.example.com", ("mx.example.com", "A"): "192.0.2.25",
        ("mx.example.com", "AAAA"): "2001:db8::25",
    }
    data[("mx.example.com", rdtype)] = Outcome.TIMEOUT
    with pytest.raises(LookupFailed):
        await run(FakeResolver(data))  # type: ignore[arg-type]
