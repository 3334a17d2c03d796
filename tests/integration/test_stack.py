"""Self-tests of the loopback DNS harness: if these fail, no integration result means anything."""

from __future__ import annotations

import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.integration.conftest import StackFactory
from tests.integration.stack import (
    Blocklist,
    DnsStack,
    Zone,
    blocklist_dataset_text,
    require_binaries,
    rrset_texts,
    zone_file_text,
)

GOOD = Zone(
    "good.test",
    """\
mail  A    192.0.2.10
mail6 AAAA 2001:db8::25
; a delegation to a server outside loopback: unbound must never ask it
child      NS   ns.child
ns.child   A    192.0.2.53
ns.child   AAAA 2001:db8::53
""",
)
SIGNED = Zone("signed.test", "www A 192.0.2.1\n", signed=True)
#: Unsigned, but unbound is given a trust anchor for it: everything must be bogus.
STRIPPED = Zone("stripped.test", "www A 192.0.2.2\n")
STRIPPED_ANCHOR = (
    "stripped.test. DS 12345 13 2 "
    "0000000000000000000000000000000000000000000000000000000000000000"
)
REVERSE4 = Zone("2.0.192.in-addr.arpa", "10 PTR mail.good.test.\n")
REVERSE6 = Zone(
    "8.b.d.0.1.0.0.2.ip6.arpa",
    "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 PTR mail6.good.test.\n",
)
V4 = Blocklist(
    "v4.bl.test",
    [("ip4set", ":127.0.0.2:Listed for spam, see http://bl.test/lookup?ip=$\n192.0.2.99\n127.0.0.2\n")],
)
V6 = Blocklist(
    "v6.bl.test",
    [("ip6trie", "2001:db8::99 :127.0.0.3:v6 spam\n"), ("ip4set", "127.0.0.2\n")],
)
DBL = Blocklist("dbl.test", [("dnset", "spammy.test :127.0.1.2:spammy domain\ntest\n")])


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory) -> DnsStack:
    return make_stack(
        zones=[GOOD, SIGNED, STRIPPED, REVERSE4, REVERSE6],
        blocklists=[V4, V6, DBL],
        silent_zones=["dead.bl.test"],
        extra_trust_anchors=[STRIPPED_ANCHOR],
    )


def test_unbound_answers_a_knot_record(stack: DnsStack) -> None:
    r = stack.query("mail.good.test", "A")
    assert r.rcode() == dns.rcode.NOERROR
    assert rrset_texts(r, "A") == ["192.0.2.10"]
    assert not r.flags & dns.flags.AD  # unsigned: insecure, not secure
    assert rrset_texts(stack.query("mail6.good.test", "AAAA"), "AAAA") == ["2001:db8::25"]
    assert stack.query("nothing.good.test", "A").rcode() == dns.rcode.NXDOMAIN


def test_reverse_zones_of_documentation_ranges_are_served(stack: DnsStack) -> None:
    # unbound's built-in RFC 6303 zones would answer these NXDOMAIN locally.
    assert rrset_texts(stack.query("10.2.0.192.in-addr.arpa", "PTR"), "PTR") == ["mail.good.test."]
    name6 = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    assert rrset_texts(stack.query(name6, "PTR"), "PTR") == ["mail6.good.test."]
    assert stack.query("30.2.0.192.in-addr.arpa", "PTR").rcode() == dns.rcode.NXDOMAIN


def test_unbound_answers_an_rbldnsd_listing_with_its_reason(stack: DnsStack) -> None:
    assert rrset_texts(stack.query("99.2.0.192.v4.bl.test", "A"), "A") == ["127.0.0.2"]
    txt = rrset_texts(stack.query("99.2.0.192.v4.bl.test", "TXT"), "TXT")
    assert txt == ['"Listed for spam, see http://bl.test/lookup?ip=192.0.2.99"']
    assert rrset_texts(stack.query("2.0.0.127.v4.bl.test", "A"), "A") == ["127.0.0.2"]
    assert stack.query("1.0.0.127.v4.bl.test", "A").rcode() == dns.rcode.NXDOMAIN
    nibbles = "9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    assert rrset_texts(stack.query(f"{nibbles}.v6.bl.test", "A"), "A") == ["127.0.0.3"]
    assert rrset_texts(stack.query("2.0.0.127.v6.bl.test", "A"), "A") == ["127.0.0.2"]
    assert rrset_texts(stack.query("spammy.test.dbl.test", "A"), "A") == ["127.0.1.2"]
    assert stack.query("test.dbl.test", "A").rcode() == dns.rcode.NOERROR
    assert stack.query("invalid.dbl.test", "A").rcode() == dns.rcode.NXDOMAIN


def test_negative_blocklist_answers_carry_a_short_soa(stack: DnsStack) -> None:
    r = stack.query("1.0.0.127.v4.bl.test", "A")
    soa = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.SOA]
    assert soa and soa[0].ttl <= 5


def test_signed_zone_validates_with_the_ad_bit(stack: DnsStack) -> None:
    r = stack.query("www.signed.test", "A", dnssec=True)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AD
    assert rrset_texts(r, "A") == ["192.0.2.1"]
    assert stack.trust_anchor("signed.test").startswith("signed.test. DS ")
    # A denial of existence is validated too.
    nx = stack.query("nothing.signed.test", "A", dnssec=True)
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AD


def test_zone_with_an_anchor_but_no_signatures_is_bogus(stack: DnsStack) -> None:
    assert stack.query("www.stripped.test", "A").rcode() == dns.rcode.SERVFAIL
    # Checking disabled (CD) shows the data is there: the failure is validation.
    q = dns.message.make_query("www.stripped.test", "A")
    q.flags |= dns.flags.CD
    r = dns.query.udp(q, stack.resolver_host, port=stack.resolver_port, timeout=3)
    assert rrset_texts(r, "A") == ["192.0.2.2"]


def test_silent_zone_never_answers(stack: DnsStack) -> None:
    with pytest.raises(dns.exception.Timeout):
        stack.query_direct(stack.silent_port, "2.0.0.127.dead.bl.test", "A", timeout=1)
    try:
        r = stack.query("2.0.0.127.dead.bl.test", "A", timeout=2)
    except dns.exception.Timeout:
        return
    assert r.rcode() == dns.rcode.SERVFAIL, dns.rcode.to_text(r.rcode())


def test_names_outside_the_stubs_never_leave_loopback(stack: DnsStack) -> None:
    for name in ("example.com", "com", "bl.test", "www.child.good.test"):
        r = stack.query(name, "A")
        assert not r.answer, name
        assert r.rcode() in (dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.REFUSED), name
    # Outside the stubs the static root answers, authoritatively, by itself.
    r = stack.query("example.com", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA
    # The delegation to 192.0.2.53 cannot be followed: do-not-query-address.
    assert stack.query("www.child.good.test", "A").rcode() == dns.rcode.SERVFAIL
    # The static root answered example.com itself (unbound logs its local actions).
    assert ". static 127.0.0.1@" in stack.unbound_log()
    assert any(
        ". static " in line and "example.com. A IN" in line
        for line in stack.unbound_log().splitlines()
    )
    # Every server unbound has talked to (its infrastructure cache) is on loopback.
    stack.query(f"uncached-{time.time_ns()}.good.test", "A")  # makes unbound ask knot
    contacted = [line.split()[0] for line in stack.unbound_control("dump_infra").splitlines()]
    assert contacted, "unbound contacted no server at all?"
    assert all(h.startswith("127.0.0.1@") for h in contacted), contacted


def test_update_zone_is_served_at_once(make_stack: StackFactory) -> None:
    plain = Zone("mutable.test", "www A 192.0.2.1\n")
    signed = Zone("msigned.test", "www A 192.0.2.1\n", signed=True)
    s = make_stack(zones=[plain, signed])
    assert rrset_texts(s.query("www.mutable.test", "A"), "A") == ["192.0.2.1"]
    assert rrset_texts(s.query("www.msigned.test", "A"), "A") == ["192.0.2.1"]
    s.update_zone(Zone("mutable.test", "www A 192.0.2.2\nnew A 192.0.2.3\n"))
    s.update_zone(Zone("msigned.test", "www A 192.0.2.2\n", signed=True))
    assert rrset_texts(s.query("www.mutable.test", "A"), "A") == ["192.0.2.2"]
    assert rrset_texts(s.query("new.mutable.test", "A"), "A") == ["192.0.2.3"]
    r = s.query("www.msigned.test", "A", dnssec=True)
    assert rrset_texts(r, "A") == ["192.0.2.2"]
    assert r.flags & dns.flags.AD  # re-signed, still valid


def test_update_blocklist_and_restart_rbldnsd(make_stack: StackFactory) -> None:
    bl = Blocklist("mutable.bl.test", [("ip4set", "127.0.0.2\n")])
    s = make_stack(blocklists=[bl])
    assert s.query("99.2.0.192.mutable.bl.test", "A").rcode() == dns.rcode.NXDOMAIN
    s.update_blocklist(Blocklist("mutable.bl.test", [("ip4set", "127.0.0.2\n192.0.2.99\n")]))
    assert rrset_texts(s.query("99.2.0.192.mutable.bl.test", "A"), "A") == ["127.0.0.2"]
    s.stop_rbldnsd()
    started = time.monotonic()
    try:
        r = s.query("2.0.0.127.mutable.bl.test", "A", timeout=5)
        assert r.rcode() == dns.rcode.SERVFAIL
    except dns.exception.Timeout:
        pass
    assert time.monotonic() - started < 6
    s.start_rbldnsd()
    assert rrset_texts(s.query("99.2.0.192.mutable.bl.test", "A"), "A") == ["127.0.0.2"]


def test_zone_file_gets_soa_and_ns_only_when_missing() -> None:
    text = zone_file_text(Zone("a.test", "www A 192.0.2.1\n"), 7)
    assert "$ORIGIN a.test." in text and "$TTL 5" in text
    assert "@ SOA localhost. hostmaster.a.test. 7 " in text and "@ NS localhost." in text
    own = zone_file_text(
        Zone("b.test", "@ 60 IN SOA ns hm 1 2 3 4 5\n@ NS ns.b.test.\nns A 127.0.0.1\n"), 7
    )
    assert own.count("SOA") == 1 and "NS localhost." not in own
    ds = blocklist_dataset_text(Blocklist("c.test", [("ip4set", "x")]), 0, "127.0.0.2")
    assert ds.startswith("$SOA 5 localhost. hostmaster.c.test. ") and "$NS 5 localhost." in ds


def test_missing_binary_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-binary"):
        require_binaries("knotd", "no-such-binary")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no-such-binary"):
        require_binaries("no-such-binary")
    require_binaries("knotd")  # present: no exception
