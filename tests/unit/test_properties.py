"""Property tests for every parser that reads text from outside (issue 6).

A parser fed by a config file or by the DNS meets arbitrary bytes sooner or
later. Each one here must fail only in the way its caller handles (a
ConfigError, a SpfPermError, a record marked invalid) and round-trip where
a round trip exists.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import struct
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exporter.blocklists import LOOPBACK_NETWORK, UNIVERSAL_ERROR_NETWORK, classify_code
from exporter.checks.dkim_key import parse_key_record, parse_tag_list
from exporter.checks.dmarc_record import Rfc, parse_dmarc
from exporter.checks.dnsbl import dnsbl_query_name
from exporter.checks.spf_eval import SpfPermError, parse_macro_string, parse_record
from exporter.config import TOP_LEVEL_KEYS, Config, ConfigError, build_config, parse_config_text
from exporter.dns import Outcome, reverse_name
from exporter.dns_wire import parse_fast, question_wire

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------

#: Keys the decoder knows at some depth: random trees built from them reach deep
#: into the decoder instead of stopping at "unknown key" on the first level.
_KEYS = st.sampled_from([
    *TOP_LEVEL_KEYS, "interval", "zones", "zone", "type", "nameservers", "port", "timeout",
    "attempts", "max_in_flight", "transport", "error_codes", "budget", "per_second", "per_day",
    "host", "ip", "helo", "name", "dkim_selectors", "smtp", "checks", "allow", "rate", "burst",
    "jitter", "run_timeout", "ca_file", "key_file", "base_url", "token_url", "credentials_file",
])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["5s", "1h30m", "0s", "-1s", "500ms", "192.0.2.1", "2001:db8::1",
                     "192.0.2.0/24", "example.com", "dnsbl", "spf", "ip", "domain", "datagram",
                     "a..b", "*.example.com", "x" * 70, "/nonexistent"]),
)
_YAML_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(_KEYS, st.text(max_size=8), st.integers()), children,
                        max_size=5),
    ),
    max_leaves=25,
)


@PROPERTY
@given(st.dictionaries(_KEYS, _YAML_VALUES, max_size=6))
def test_config_decoder_raises_only_config_error_on_any_tree(tree: dict[Any, Any]) -> None:
    try:
        build_config(tree, "<prop>")
    except ConfigError as exc:
        assert exc.problems and all(p.startswith("<prop>: ") for p in exc.problems)


@PROPERTY
@given(st.text(max_size=300))
def test_config_text_raises_only_config_error_on_any_text(text: str) -> None:
    try:
        parse_config_text(text, "<prop>")
    except ConfigError as exc:
        assert exc.problems


@PROPERTY
@given(st.dictionaries(_KEYS, _YAML_VALUES, max_size=6))
def test_config_text_of_any_yaml_tree_raises_only_config_error(tree: dict[Any, Any]) -> None:
    try:
        text = yaml.safe_dump(tree)
    except yaml.YAMLError:
        assume(False)
        return
    with contextlib.suppress(ConfigError):
        parse_config_text(text, "<prop>")


_LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
_DOMAIN = st.lists(_LABEL, min_size=2, max_size=4).map(".".join).filter(
    lambda n: not _is_ip(n))
_IP = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
_SECONDS = st.integers(min_value=1, max_value=86400)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@st.composite
def _valid_configs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid config as a YAML tree, and what the model must hold after decoding it."""
    ips = draw(st.lists(_IP, max_size=4, unique=True))
    hosts = draw(st.lists(_DOMAIN, max_size=3, unique=True))
    domains = draw(st.lists(_DOMAIN, max_size=3, unique=True))
    selectors = draw(st.lists(_LABEL, max_size=3, unique=True))
    zones = draw(st.lists(_DOMAIN, max_size=3, unique=True))
    allow = draw(st.lists(st.one_of(_DOMAIN, st.sampled_from(
        ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"])), max_size=3, unique=True))
    dnsbl_interval = draw(_SECONDS)
    timeout_ms = draw(st.integers(min_value=1, max_value=60000))
    rate = draw(st.floats(min_value=0.01, max_value=1000))
    burst = draw(st.integers(min_value=1, max_value=100000))
    tree: dict[str, Any] = {
        "resolver": {"nameservers": ["127.0.0.1"], "port": 5353, "timeout": f"{timeout_ms}ms"},
        "dnsbl": {"interval": f"{dnsbl_interval}s",
                  "zones": [{"zone": z, "type": "ip"} for z in zones]},
        "senders": [{"ip": ip} for ip in ips] + [{"host": h} for h in hosts],
        "domains": [{"name": d, "dkim_selectors": selectors, "smtp": False} for d in domains],
        "modules": {"auth": {"checks": ["spf", "dmarc"]}},
        "probe": {"allow": allow, "rate": rate, "burst": burst},
    }
    expected = {
        "ips": [str(ipaddress.ip_address(ip)) for ip in ips], "hosts": hosts,
        "domains": domains, "selectors": tuple(selectors), "zones": tuple(zones),
        "dnsbl_interval": float(dnsbl_interval), "timeout": timeout_ms / 1000,
        "allow": tuple(str(ipaddress.ip_network(a)) if "/" in a else a for a in allow),
        "rate": rate, "burst": burst,
    }
    return tree, expected


@PROPERTY
@given(_valid_configs())
def test_a_valid_config_round_trips_through_yaml(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    tree, want = case
    config = parse_config_text(yaml.safe_dump(tree), "<prop>")
    assert [s.ip for s in config.senders if s.ip] == want["ips"]
    assert [s.host for s in config.senders if s.host] == want["hosts"]
    assert [d.name for d in config.domains] == want["domains"]
    assert all(d.dkim_selectors == want["selectors"] for d in config.domains)
    assert tuple(z.zone for z in config.dnsbl.zones) == want["zones"]
    assert config.dnsbl.builtin is False
    assert config.dnsbl.interval == want["dnsbl_interval"]
    assert math.isclose(config.resolver.timeout, want["timeout"])
    assert config.probe.allow == want["allow"]
    assert (config.probe.rate, config.probe.burst) == (want["rate"], want["burst"])
    assert [(m.name, m.checks) for m in config.modules] == [("auth", ("spf", "dmarc"))]
    # Decoding the same tree again gives an equal model: nothing depends on state.
    assert parse_config_text(yaml.safe_dump(tree), "<prop>") == config


def _durations(config: Config) -> list[float]:
    found = [config.resolver.timeout, config.dnsbl.interval, config.ptr.interval,
             config.scheduler.run_timeout, *(m.timeout for m in config.modules)]
    return found


@PROPERTY
@given(st.sampled_from(["resolver.timeout", "dnsbl.interval", "ptr.interval",
                        "scheduler.run_timeout"]),
       st.sampled_from([".nan", ".inf"]))
def test_every_accepted_duration_is_finite_and_positive(key: str, value: str) -> None:
    section, field = key.split(".")
    try:
        config = parse_config_text(f"{section}:\n  {field}: {value}\n", "<prop>")
    except ConfigError:
        return
    assert all(math.isfinite(d) and d > 0 for d in _durations(config))


# --------------------------------------------------------------------------
# SPF
# --------------------------------------------------------------------------

_SPF_TERMS = st.one_of(
    st.sampled_from(["all", "-all", "~all", "?all", "+all", "a", "mx", "ptr", "a/24", "mx//64",
                     "redirect=_spf.example.com", "exp=explain.%{d}", "include:%{d2}.example.com",
                     "exists:%{ir}.%{l1r+-}._spf.%{d}", "ip4:192.0.2.0/24", "ip6:2001:db8::/32",
                     "include:", "ip4:999.1.1.1", "a:%", "%{", "moo=%{x}", "ip4:1.2.3.4/033"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=20),
    st.text(max_size=8),
)


@PROPERTY
@given(st.lists(_SPF_TERMS, max_size=8), st.sampled_from(["v=spf1", "V=SPF1", "v=spf10", ""]))
def test_spf_parse_record_raises_only_permerror(terms: list[str], head: str) -> None:
    text = " ".join([head, *terms])
    try:
        record = parse_record(text)
    except SpfPermError:
        return
    # Parsing is a pure function of the text: the same text parses the same.
    again = parse_record(record.text)
    assert again == record
    # Every mechanism keeps its term text, so the record re-serialises from its parts.
    rebuilt = " ".join(
        ["v=spf1", *(m.text for m in record.mechanisms)]
        + ([f"redirect={record.redirect.text}"] if record.redirect else [])
        + ([f"exp={record.exp.text}"] if record.exp else [])
        + [f"{k}={v}" for k, v in record.other_modifiers])
    reparsed = parse_record(rebuilt)
    assert reparsed.mechanisms == record.mechanisms
    assert reparsed.redirect == record.redirect and reparsed.exp == record.exp
    assert reparsed.other_modifiers == record.other_modifiers


@PROPERTY
@given(st.text(max_size=40), st.booleans())
def test_spf_macro_string_raises_only_permerror_and_keeps_the_text(
    text: str, explanation: bool
) -> None:
    try:
        parsed = parse_macro_string(text, explanation=explanation)
    except SpfPermError:
        return
    assert parsed.text == text
    assert parse_macro_string(text, explanation=explanation) == parsed
    # Literal tokens never contain a macro start: "%" only survives as an expanded "%%".
    literal = "".join(t for t in parsed.tokens if isinstance(t, str))
    assert "%{" not in literal or "%%" in text


# --------------------------------------------------------------------------
# DMARC and DKIM
# --------------------------------------------------------------------------

_DMARC_PARTS = st.one_of(
    st.sampled_from(["p=none", "p=reject", "p=quarantine", "sp=none", "pct=50", "pct=500",
                     "rua=mailto:a@example.com", "rua=mailto:", "ruf=mailto:x@y!10m", "adkim=s",
                     "aspf=r", "np=reject", "t=y", "psd=n", "fo=1:d", "ri=86400", "rf=afrf",
                     "=", "p", "p=", "v=DMARC1", "x=\u00e9"]),
    st.text(max_size=15),
)


@PROPERTY
@given(st.lists(_DMARC_PARTS, max_size=8), st.sampled_from(["v=DMARC1", "v=dmarc1", ""]),
       st.sampled_from(list(Rfc)))
def test_dmarc_parser_never_raises(parts: list[str], head: str, rfc: Rfc) -> None:
    text = "; ".join([head, *parts])
    record = parse_dmarc(text, rfc)
    assert record.text == text
    assert parse_dmarc(text, rfc) == record


@PROPERTY
@given(st.text(max_size=200))
def test_dmarc_parser_never_raises_on_any_text(text: str) -> None:
    parse_dmarc(text)
    parse_dmarc(text, Rfc.RFC7489)


_DKIM_PARTS = st.one_of(
    st.sampled_from(["v=DKIM1", "k=rsa", "k=ed25519", "k=dsa", "p=", "p=MIIB", "p=!!!!", "h=sha1",
                     "h=sha256", "s=email", "s=*", "t=y", "t=s:y", "n=note", "g=*", "v=DKIM2",
                     "p=MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=",
                     "p=" + "A" * 400]),
    st.text(max_size=20),
)


@PROPERTY
@given(st.lists(_DKIM_PARTS, max_size=8), st.sampled_from(["; ", ";", " ; "]))
def test_dkim_key_parser_never_raises(parts: list[str], sep: str) -> None:
    text = sep.join(parts)
    key = parse_key_record(text)
    assert key.record == text
    assert key.valid == (not key.problems)


@PROPERTY
@given(st.text(max_size=200))
def test_dkim_tag_list_never_raises_on_any_text(text: str) -> None:
    tags, _ = parse_tag_list(text)
    parse_key_record(text)
    assert all("=" not in name and ";" not in name for name, _ in tags)


# --------------------------------------------------------------------------
# DNSBL answers and query names
# --------------------------------------------------------------------------


@PROPERTY
@given(st.one_of(st.ip_addresses().map(str), st.text(max_size=20)))
def test_classify_code_is_a_listing_only_inside_127_8_outside_error_ranges(code: str) -> None:
    listed = classify_code(code, ())
    try:
        addr = ipaddress.ip_address(code)
    except ValueError:
        assert listed is False
        return
    expected = (addr.version == 4 and addr in LOOPBACK_NETWORK
                and addr not in UNIVERSAL_ERROR_NETWORK)
    assert listed is expected
    # A configured error network containing the code always makes it "not listed".
    if addr.version == 4:
        assert classify_code(code, (ipaddress.ip_network(f"{addr}/32"),)) is False


@PROPERTY
@given(st.ip_addresses().map(str), _DOMAIN)
def test_dnsbl_query_name_round_trips_with_the_reverse_name(ip: str, zone: str) -> None:
    name = dnsbl_query_name(ip, zone)
    assert name.endswith("." + zone)
    stem = name[: -len(zone) - 1]
    suffix = "in-addr.arpa" if ipaddress.ip_address(ip).version == 4 else "ip6.arpa"
    assert f"{stem}.{suffix}" == reverse_name(ip)
    # And back: the reversed labels give the address again.
    labels = stem.split(".")[::-1]
    if ipaddress.ip_address(ip).version == 4:
        back = ipaddress.ip_address(".".join(labels))
    else:
        hexed = "".join(labels)
        back = ipaddress.ip_address(":".join(hexed[i:i + 4] for i in range(0, 32, 4)))
    assert str(back) == str(ipaddress.ip_address(ip))


@PROPERTY
@given(_DOMAIN, _DOMAIN)
def test_dnsbl_query_name_of_a_domain_is_the_domain_under_the_zone(domain: str, zone: str) -> None:
    assert dnsbl_query_name(domain, zone) == f"{domain}.{zone}"


# --------------------------------------------------------------------------
# The wire parser
# --------------------------------------------------------------------------

#: What DatagramClient._receive catches around parse_fast.
CAUGHT = (struct.error, IndexError, ValueError)


def _header(ident: int, flags: int, an: int, ns: int) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, 1, an, ns, 0)


@st.composite
def _answers(draw: st.DrawFn) -> tuple[bytes, int, str, str, int]:
    """A plausible answer to a question, with random damage: what a hostile server sends."""
    rdtype, code = draw(st.sampled_from([("A", 1), ("TXT", 16), ("MX", 15)]))
    question = question_wire("2.0.0.127.zen.example", rdtype)
    assert question is not None
    an = draw(st.integers(min_value=0, max_value=5))
    ns = draw(st.integers(min_value=0, max_value=2))
    flags = 0x8180 | draw(st.sampled_from([0, 2, 3, 5, 1, 4, 0x20]))
    body = b""
    for _ in range(an):
        rtype = draw(st.sampled_from([1, 16, 5, 28, 99]))
        rdata = draw(st.binary(max_size=40))
        rdlen = draw(st.one_of(st.just(len(rdata)), st.integers(min_value=0, max_value=65535)))
        body += b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, draw(st.integers(0, 2**32 - 1)),
                                          rdlen) + rdata
    for _ in range(ns):
        rdata = draw(st.binary(max_size=30))
        body += b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 60, len(rdata)) + rdata
    data = _header(1, flags, an, ns) + question + body
    cut = draw(st.integers(min_value=12, max_value=len(data)))
    data = data[:cut] + draw(st.binary(max_size=8))
    return data, len(question), "2.0.0.127.zen.example", rdtype, code


@PROPERTY
@given(_answers())
def test_wire_parser_on_damaged_answers_raises_only_what_the_caller_catches(
    case: tuple[bytes, int, str, str, int],
) -> None:
    data, qlen, qname, rdtype, code = case
    try:
        answer = parse_fast(data, qlen, qname, rdtype, code)
    except CAUGHT:
        return
    if answer is not None:
        assert answer.name == qname and answer.rdtype == rdtype
        rcode = data[3] & 0x0F
        if rcode == 2:
            assert answer.outcome is Outcome.SERVFAIL
        if rcode == 5:
            assert answer.outcome is Outcome.REFUSED
        # A failed rcode is never turned into an answer.
        if answer.answered:
            assert rcode in (0, 3)


@PROPERTY
@given(st.binary(min_size=12, max_size=200), st.sampled_from([("A", 1), ("TXT", 16)]),
       st.integers(min_value=0, max_value=60))
def test_wire_parser_on_random_bytes_raises_only_what_the_caller_catches(
    data: bytes, kind: tuple[str, int], qlen: int
) -> None:
    with contextlib.suppress(*CAUGHT):
        parse_fast(data, qlen, "x.example", kind[0], kind[1])


def test_wire_parser_reads_a_well_formed_a_answer() -> None:
    # The property tests above must not pass because parse_fast rejects everything.
    question = question_wire("2.0.0.127.zen.example", "A")
    assert question is not None
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes([127, 0, 0, 2])
    data = _header(7, 0x8180, 1, 0) + question + rr
    answer = parse_fast(data, len(question), "2.0.0.127.zen.example", "A", 1)
    assert answer is not None
    assert (answer.outcome, answer.records, answer.ttl) == (Outcome.OK, ("127.0.0.2",), 300)


def test_wire_parser_on_an_a_record_cut_short_raises_only_what_the_caller_catches() -> None:
    question = question_wire("x.example", "A")
    assert question is not None
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + b"\x7f"  # rdlen 4, one byte sent
    data = _header(1, 0x8180, 1, 0) + question + rr
    with contextlib.suppress(*CAUGHT):
        parse_fast(data, len(question), "x.example", "A", 1)
