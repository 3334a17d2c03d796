"""SPF ``check_host()`` (RFC 7208), asynchronous, every lookup through our Resolver.

pyspf implements the same function, but it does its own DNS (a replaceable
module-level lookup function, synchronous) and folds some lookup failures
into other results; this module keeps the project's rule: a lookup the DNS
did not answer (timeout, SERVFAIL, REFUSED) is a ``temperror``, never "no
record". It also gives the record parser that :mod:`exporter.checks.spf`
uses for its static analysis (lookup counting without a client IP).

Where RFC 7208 leaves a choice, the choice follows the OpenSPF test suite
(``rfc7208-tests.yml``), which ``tests/conformance/test_rfc7208.py`` runs
in full.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum

from exporter.dns import Answer, Outcome, Resolver, normalize_name, reverse_name


class SpfResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


#: Every value of the ``result`` label, in a stable order.
SPF_RESULTS = tuple(r.value for r in SpfResult)

#: RFC 7208 4.6.4: at most 10 terms that query the DNS, at most 2 void lookups.
MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
#: RFC 7208 4.6.4: an "mx" with more than 10 MX names is a permerror; "ptr" and
#: %{p} look at the first 10 PTR names only.
MAX_MX_NAMES = 10
MAX_PTR_NAMES = 10

#: The mechanisms and modifiers that cost a DNS-querying term.
DNS_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})

DEFAULT_EXPLANATION = "SPF fail: %{c} is not authorized to send mail for %{d}"

_QUALIFIERS = {
    "+": SpfResult.PASS,
    "-": SpfResult.FAIL,
    "~": SpfResult.SOFTFAIL,
    "?": SpfResult.NEUTRAL,
}
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_MODIFIER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9\-_.]*)=(.*)\Z", re.DOTALL)
_MECHANISM_RE = re.compile(r"^([+\-~?]?)([^:/]*)(.*)\Z", re.DOTALL)
# domain-end = ( "." toplabel [ "." ] ) / macro-expand
_TOPLABEL_END_RE = re.compile(
    r"\.(?:[a-z0-9]*[a-z][a-z0-9]*|[a-z0-9]+-[a-z0-9\-]*[a-z0-9])\.?\Z", re.IGNORECASE
)
_CIDR_TAIL_RE = re.compile(r"^(.*?)(?:/([0-9]+))?(?://([0-9]+))?\Z", re.DOTALL)
_IP4_RE = re.compile(r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                     r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\Z")
_DOMAIN_LABEL_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?\Z")
_MACRO_LETTERS = frozenset("slodipvh")
_EXP_MACRO_LETTERS = frozenset("slodipvhcrt")
_MACRO_DELIMITERS = frozenset(".-+,/_=")
_URL_SAFE = "-._~"  # RFC 3986 unreserved, besides letters and digits

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SpfError(Exception):
    """Base of the two errors that end an evaluation."""


class SpfPermError(SpfError):
    """A permanent error: syntax, limits, a missing include target."""


class SpfTempError(SpfError):
    """A DNS lookup was not answered."""


# --------------------------------------------------------------------------
# Record syntax
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Macro:
    """One ``%{...}`` macro-expand (``letter`` is lower-case; ``upper`` URL-escapes)."""

    letter: str
    digits: int | None
    reverse: bool
    delimiters: str
    upper: bool


MacroToken = str | Macro


@dataclass(frozen=True, slots=True)
class MacroString:
    text: str
    tokens: tuple[MacroToken, ...]

    @property
    def has_macros(self) -> bool:
        return any(isinstance(t, Macro) for t in self.tokens)


def parse_macro_string(text: str, *, explanation: bool = False) -> MacroString:
    """Tokenize a macro-string; in an explanation, spaces and c/r/t are allowed."""
    letters = _EXP_MACRO_LETTERS if explanation else _MACRO_LETTERS
    tokens: list[MacroToken] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "%":
            # macro-literal = %x21-24 / %x26-7E; explain-string adds SP.
            if not ("\x21" <= ch <= "\x7e" or (explanation and ch == " ")):
                raise SpfPermError(f"invalid character {ch!r} in {text!r}")
            literal.append(ch)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt in ("%", "_", "-"):
            literal.append({"%": "%", "_": " ", "-": "%20"}[nxt])
            i += 2
            continue
        if nxt != "{":
            raise SpfPermError(f"invalid macro (a '%' must start %{{..}}, %%, %_ or %-): {text!r}")
        end = text.find("}", i + 2)
        if end < 0:
            raise SpfPermError(f"unterminated macro in {text!r}")
        body = text[i + 2 : end]
        m = re.fullmatch(r"([A-Za-z])([0-9]*)(r?)([.\-+,/_=]*)", body, re.IGNORECASE)
        if m is None or m.group(1).lower() not in letters:
            raise SpfPermError(f"invalid macro %{{{body}}} in {text!r}")
        digits = int(m.group(2)) if m.group(2) else None
        if digits == 0:
            raise SpfPermError(f"macro %{{{body}}}: a part count must be nonzero")
        if literal:
            tokens.append("".join(literal))
            literal = []
        tokens.append(
            Macro(m.group(1).lower(), digits, bool(m.group(3)), m.group(4), m.group(1).isupper())
        )
        i = end + 1
    if literal:
        tokens.append("".join(literal))
    return MacroString(text, tuple(tokens))


def parse_domain_spec(text: str) -> MacroString:
    """A domain-spec must end in a macro or in ``.toplabel`` (checked before expansion)."""
    if not text:
        raise SpfPermError("empty domain-spec")
    spec = parse_macro_string(text)
    last = spec.tokens[-1]
    # The raw text decides the ending: "%%" and friends are macro-expands too.
    ends_in_macro = isinstance(last, Macro) or re.search(r"%[%_\-]\Z", text) is not None
    if not ends_in_macro and not _TOPLABEL_END_RE.search(text):
        raise SpfPermError(f"domain-spec {text!r} does not end in a valid top-level label")
    return spec


@dataclass(frozen=True, slots=True)
class Mechanism:
    qualifier: str
    kind: str
    #: The target domain-spec ("" for none: the current domain).
    domain: MacroString | None = None
    #: ip4/ip6: the network.
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128
    text: str = ""

    @property
    def result(self) -> SpfResult:
        return _QUALIFIERS[self.qualifier]

    @property
    def queries_dns(self) -> bool:
        return self.kind in DNS_TERMS


@dataclass(frozen=True, slots=True)
class SpfRecord:
    text: str
    mechanisms: tuple[Mechanism, ...]
    redirect: MacroString | None = None
    exp: MacroString | None = None
    #: Modifiers RFC 7208 does not define (ignored, but syntax-checked).
    other_modifiers: tuple[tuple[str, str], ...] = ()

    @property
    def has_all(self) -> bool:
        return any(m.kind == "all" for m in self.mechanisms)


def is_spf_record(text: str) -> bool:
    """RFC 7208 4.5: the record starts with ``v=spf1`` (any case), then a space or its end."""
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


def select_records(texts: tuple[str, ...] | list[str]) -> list[str]:
    return [t for t in texts if is_spf_record(t)]


def _cidr(text: str | None, maximum: int, term: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise SpfPermError(f"invalid CIDR length /{text} in {term!r}")
    # ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT): no leading zeros.
    if (len(text) > 1 and text[0] == "0") or int(text) > maximum:
        raise SpfPermError(f"invalid CIDR length /{text} in {term!r}")
    return int(text)


def _parse_mechanism(term: str) -> Mechanism:
    m = _MECHANISM_RE.match(term)
    assert m is not None  # the pattern matches every string
    qualifier = m.group(1) or "+"
    kind = m.group(2).lower()
    rest = m.group(3)
    if kind not in _MECHANISMS:
        raise SpfPermError(f"unknown mechanism {term!r}")
    if kind == "all":
        if rest:
            raise SpfPermError(f"'all' takes no argument: {term!r}")
        return Mechanism(qualifier, kind, text=term)
    if kind in ("include", "exists"):
        if not rest.startswith(":"):
            raise SpfPermError(f"{kind} needs a domain: {term!r}")
        return Mechanism(qualifier, kind, parse_domain_spec(rest[1:]), text=term)
    if kind == "ptr":
        if not rest:
            return Mechanism(qualifier, kind, text=term)
        if not rest.startswith(":"):
            raise SpfPermError(f"invalid ptr mechanism {term!r}")
        return Mechanism(qualifier, kind, parse_domain_spec(rest[1:]), text=term)
    if kind in ("a", "mx"):
        cm = _CIDR_TAIL_RE.match(rest)
        assert cm is not None
        head, c4, c6 = cm.group(1), cm.group(2), cm.group(3)
        cidr4 = _cidr(c4, 32, term)
        cidr6 = _cidr(c6, 128, term)
        domain: MacroString | None = None
        if head:
            if not head.startswith(":"):
                raise SpfPermError(f"invalid {kind} mechanism {term!r}")
            domain = parse_domain_spec(head[1:])
        return Mechanism(
            qualifier, kind, domain,
            cidr4=32 if cidr4 is None else cidr4, cidr6=128 if cidr6 is None else cidr6,
            text=term,
        )
    # ip4 / ip6
    if not rest.startswith(":"):
        raise SpfPermError(f"{kind} needs an address: {term!r}")
    addr, slash, length = rest[1:].partition("/")
    if kind == "ip4":
        if not _IP4_RE.match(addr):
            raise SpfPermError(f"invalid IPv4 address in {term!r}")
        bits = _cidr(length, 32, term) if slash else 32
        if bits is None:
            raise SpfPermError(f"invalid CIDR length in {term!r}")
        net: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv4Network(
            f"{addr}/{bits}", strict=False
        )
        return Mechanism(qualifier, kind, network=net, cidr4=bits, text=term)
    if "%" in addr or not re.fullmatch(r"[0-9A-Fa-f:.]+", addr):
        raise SpfPermError(f"invalid IPv6 address in {term!r}")
    try:
        ipaddress.IPv6Address(addr)
    except ValueError as exc:
        raise SpfPermError(f"invalid IPv6 address in {term!r}") from exc
    bits6 = _cidr(length, 128, term) if slash else 128
    if bits6 is None or (slash and not length):
        raise SpfPermError(f"invalid CIDR length in {term!r}")
    net = ipaddress.IPv6Network(f"{addr}/{bits6}", strict=False)
    return Mechanism(qualifier, kind, network=net, cidr6=bits6, text=term)


def parse_record(text: str) -> SpfRecord:
    """Parse a whole record; any syntax error anywhere is a permerror (RFC 7208 4.6)."""
    if not is_spf_record(text):
        raise SpfPermError(f"not an SPF record: {text!r}")
    if not text.isascii():
        raise SpfPermError("the record contains non-ASCII characters")
    mechanisms: list[Mechanism] = []
    redirect: MacroString | None = None
    exp: MacroString | None = None
    others: list[tuple[str, str]] = []
    # Terms are separated by spaces only (a tab or CR inside is a syntax error).
    for term in text[6:].split(" "):
        if not term:
            continue
        mod = _MODIFIER_RE.match(term)
        if mod is None:
            mechanisms.append(_parse_mechanism(term))
            continue
        name, value = mod.group(1).lower(), mod.group(2)
        if name == "redirect":
            if redirect is not None:
                raise SpfPermError("more than one redirect= modifier")
            redirect = parse_domain_spec(value)
        elif name == "exp":
            if exp is not None:
                raise SpfPermError("more than one exp= modifier")
            exp = parse_domain_spec(value)
        else:
            parse_macro_string(value)  # unknown modifiers are ignored, but must parse
            others.append((name, value))
    return SpfRecord(text, tuple(mechanisms), redirect, exp, tuple(others))


def valid_domain(name: str) -> bool:
    """RFC 7208 4.3: a well-formed, multi-label name (else check_host gives none)."""
    name = name[:-1] if name.endswith(".") else name
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    return len(labels) >= 2 and all(_DOMAIN_LABEL_RE.match(label) for label in labels)


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpfVerdict:
    """What check_host() concluded, and why (for people)."""

    result: SpfResult
    #: For ``fail``: the domain's exp= text, else the default explanation.
    explanation: str = ""
    #: Why: the matching mechanism, or the error.
    reason: str = ""
    dns_lookups: int = 0
    void_lookups: int = 0


@dataclass(slots=True)
class _Evaluation:
    resolver: Resolver
    ip: IPAddress
    sender: str
    helo: str
    receiver: str
    timestamp: int
    default_explanation: str
    dns_terms: int = 0
    void: int = 0
    #: The client's validated PTR names, looked up once per evaluation.
    _validated: list[str] | None = None

    # -- accounting ------------------------------------------------------

    def count_term(self, term: str) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise SpfPermError(
                f"more than {MAX_DNS_TERMS} DNS-querying terms "
                f"(number {self.dns_terms} was {term!r})"
            )

    def count_void(self, answer: Answer) -> None:
        if answer.outcome in (Outcome.NXDOMAIN, Outcome.NODATA) or not answer.records:
            self.void += 1
            if self.void > MAX_VOID_LOOKUPS:
                raise SpfPermError(
                    f"more than {MAX_VOID_LOOKUPS} void lookups (the last: "
                    f"{answer.rdtype} {answer.name} {answer.outcome.value})"
                )

    async def ask(self, name: str, rdtype: str) -> Answer:
        answer = await self.resolver.resolve(name, rdtype)
        if not answer.answered:
            detail = f" ({answer.detail})" if answer.detail else ""
            raise SpfTempError(f"{rdtype} {name}: {answer.outcome.value}{detail}")
        return answer

    # -- macros ------------------------------------------------------------

    @property
    def local_part(self) -> str:
        return self.sender.rpartition("@")[0] or "postmaster"

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]

    def _ip_dotted(self) -> str:
        if self.ip.version == 4:
            return str(self.ip)
        # Upper-case nibbles, as the OpenSPF suite expects (DNS ignores case).
        return ".".join(self.ip.exploded.replace(":", "").upper())

    async def _macro_value(self, letter: str, domain: str) -> str:
        if letter == "s":
            return self.sender
        if letter == "l":
            return self.local_part
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            return self._ip_dotted()
        if letter == "p":
            return await self._validated_name(domain)
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return str(self.ip)
        if letter == "r":
            return self.receiver
        if letter == "t":
            return str(self.timestamp)
        raise SpfPermError(f"unknown macro letter {letter!r}")  # parse_macro_string prevents

    async def expand(self, spec: MacroString, domain: str) -> str:
        out: list[str] = []
        for token in spec.tokens:
            if isinstance(token, str):
                out.append(token)
                continue
            value = await self._macro_value(token.letter, domain)
            if token.digits is not None or token.reverse or token.delimiters:
                delims = token.delimiters or "."
                parts = re.split("[" + re.escape(delims) + "]", value)
                if token.reverse:
                    parts.reverse()
                if token.digits is not None:
                    parts = parts[-token.digits :]
                value = ".".join(parts)
            if token.upper:
                value = urllib.parse.quote(value, safe=_URL_SAFE)
            out.append(value)
        return "".join(out)

    async def target(self, spec: MacroString | None, domain: str) -> str:
        """A mechanism's target name: expanded, cut to 253 octets from the left (RFC 7208 7.3)."""
        if spec is None:
            return domain
        name = await self.expand(spec, domain)
        while len(name.rstrip(".")) > 253 and "." in name:
            name = name.split(".", 1)[1]
        return name

    # -- PTR validation (ptr mechanism and %{p}) ---------------------------

    async def validated_names(self) -> list[str]:
        """The PTR names of the client that resolve back to it (RFC 7208 5.5).

        A failed PTR lookup raises SpfTempError (the callers decide); a failed
        forward lookup only skips that name, as 5.5 says.
        """
        if self._validated is not None:
            return self._validated
        answer = await self.ask(reverse_name(str(self.ip)), "PTR")
        rdtype = "A" if self.ip.version == 4 else "AAAA"
        names: list[str] = []
        for name in answer.records[:MAX_PTR_NAMES]:
            forward = await self.resolver.resolve(name, rdtype)
            if not forward.answered:
                continue
            if any(_same_ip(addr, self.ip) for addr in forward.records):
                names.append(normalize_name(name))
        self._validated = names
        return names

    async def _validated_name(self, domain: str) -> str:
        try:
            names = await self.validated_names()
        except SpfTempError:
            return "unknown"
        domain = normalize_name(domain)
        for name in names:
            if name == domain:
                return name
        for name in names:
            if name.endswith("." + domain):
                return name
        return names[0] if names else "unknown"

    # -- check_host ----------------------------------------------------------

    async def record(self, domain: str) -> SpfRecord | None:
        """The domain's SPF record, None for "none"; raises for temperror/permerror."""
        answer = await self.ask(domain, "TXT")
        if answer.outcome != Outcome.OK:
            return None
        texts = select_records(answer.records)
        if not texts:
            return None
        if len(texts) > 1:
            raise SpfPermError(f"{domain} has {len(texts)} SPF records")
        return parse_record(texts[0])

    async def check_host(self, domain: str, explain: bool) -> tuple[SpfResult, str, str]:
        """(result, explanation, reason) for one domain; SpfError for perm/temperror."""
        if not valid_domain(domain):
            return SpfResult.NONE, "", f"{domain!r} is not a valid domain name"
        record = await self.record(domain)
        if record is None:
            return SpfResult.NONE, "", f"no SPF record at {domain}"
        for mech in record.mechanisms:
            why = await self.matches(mech, domain)
            if why is not None:
                result = mech.result
                reason = f"matched {mech.text} in {domain}{why}"
                break
        else:
            if record.redirect is not None and not record.has_all:
                self.count_term("redirect=")
                target = await self.target(record.redirect, domain)
                result, explanation, reason = await self.check_host(target, explain)
                if result == SpfResult.NONE:
                    raise SpfPermError(f"redirect={target} has no SPF record")
                return result, explanation, reason
            result = SpfResult.NEUTRAL
            reason = f"no mechanism matched in {domain} (default neutral)"
        explanation = ""
        if result == SpfResult.FAIL and explain:
            explanation = await self.explanation(record.exp, domain)
        return result, explanation, reason

    async def explanation(self, exp: MacroString | None, domain: str) -> str:
        """exp= text (RFC 7208 6.2); any problem with it gives the default text."""
        default = await self._expand_text(self.default_explanation, domain)
        if exp is None:
            return default
        try:
            name = await self.target(exp, domain)
            if not valid_domain(name):
                return default
            answer = await self.resolver.resolve(name, "TXT")
            if answer.outcome != Outcome.OK or len(answer.records) != 1:
                return default
            text = answer.records[0]
            if not text.isascii():
                return default
            return await self.expand(parse_macro_string(text, explanation=True), domain)
        except SpfError:
            return default

    async def _expand_text(self, text: str, domain: str) -> str:
        try:
            return await self.expand(parse_macro_string(text, explanation=True), domain)
        except SpfError:
            return text

    async def matches(self, mech: Mechanism, domain: str) -> str | None:
        """None when ``mech`` does not match; else extra detail for the reason ("" if none)."""
        kind = mech.kind
        if kind == "all":
            return ""
        if kind in ("ip4", "ip6"):
            assert mech.network is not None
            hit = mech.network.version == self.ip.version and self.ip in mech.network
            return "" if hit else None
        self.count_term(mech.text)
        target = await self.target(mech.domain, domain)
        if kind == "include":
            result, _, inner = await self.check_host(target, explain=False)
            if result == SpfResult.NONE:
                raise SpfPermError(f"include:{target} has no SPF record")
            return f" ({inner})" if result == SpfResult.PASS else None
        if kind == "a":
            return "" if await self._addresses_match(target, mech) else None
        if kind == "mx":
            answer = await self.ask(target, "MX")
            self.count_void(answer)
            if len(answer.records) > MAX_MX_NAMES:
                raise SpfPermError(
                    f"mx:{target} has {len(answer.records)} MX names (the limit is "
                    f"{MAX_MX_NAMES})"
                )
            for record in answer.records:
                host = record.partition(" ")[2]
                if host and await self._addresses_match(host, mech, count_void=False):
                    return f" (MX host {host})"
            return None
        if kind == "ptr":
            try:
                names = await self.validated_names()
            except SpfTempError:
                return None  # RFC 7208 5.5: a PTR lookup error means no match
            want = normalize_name(target)
            for n in names:
                if n == want or n.endswith("." + want):
                    return f" (validated PTR {n})"
            return None
        if kind == "exists":
            # RFC 7208 5.7: always an A query, whatever the client's family.
            answer = await self.ask(target, "A")
            self.count_void(answer)
            return f" ({target} exists)" if answer.records else None
        raise SpfPermError(f"unknown mechanism {mech.text!r}")  # parse_record prevents

    async def _addresses_match(self, name: str, mech: Mechanism, count_void: bool = True) -> bool:
        rdtype = "A" if self.ip.version == 4 else "AAAA"
        answer = await self.ask(name, rdtype)
        if count_void:
            self.count_void(answer)
        bits = mech.cidr4 if self.ip.version == 4 else mech.cidr6
        for addr in answer.records:
            try:
                net = ipaddress.ip_network(f"{addr}/{bits}", strict=False)
            except ValueError:
                continue
            if net.version == self.ip.version and self.ip in net:
                return True
        return False


def _same_ip(text: str, ip: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False


def _client_ip(ip: str) -> IPAddress:
    addr = ipaddress.ip_address(ip.strip())
    # An IPv4-mapped IPv6 client is the IPv4 client it maps (RFC 7208 5: ip6 matching).
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


async def check_host(
    resolver: Resolver,
    ip: str,
    domain: str,
    sender: str,
    helo: str = "",
    *,
    receiver: str = "unknown",
    default_explanation: str = DEFAULT_EXPLANATION,
    timestamp: int | None = None,
) -> SpfVerdict:
    """RFC 7208 check_host(<ip>, <domain>, <sender>); ``helo`` feeds %{h}.

    Never raises for SPF or DNS problems: those are the permerror and
    temperror results. ``reason`` says which term or lookup decided.
    """
    state = _Evaluation(
        resolver, _client_ip(ip), sender, helo, receiver,
        int(time.time()) if timestamp is None else timestamp, default_explanation,
    )
    try:
        result, explanation, reason = await state.check_host(domain, explain=True)
    except SpfTempError as exc:
        result, explanation, reason = SpfResult.TEMPERROR, "", str(exc)
    except SpfPermError as exc:
        result, explanation, reason = SpfResult.PERMERROR, "", str(exc)
    return SpfVerdict(result, explanation, reason, state.dns_terms, state.void)


async def check_mail(
    resolver: Resolver,
    ip: str,
    mailfrom: str,
    helo: str,
    *,
    receiver: str = "unknown",
    default_explanation: str = DEFAULT_EXPLANATION,
    timestamp: int | None = None,
) -> SpfVerdict:
    """check_host() for an SMTP transaction (RFC 7208 4.3 and 2.4).

    An empty MAIL FROM is checked as ``postmaster@<helo>``; a missing local
    part is ``postmaster``.
    """
    if not mailfrom:
        sender = f"postmaster@{helo}"
    else:
        local, at, domain = mailfrom.rpartition("@")
        sender = f"{local or 'postmaster'}@{domain}" if at else f"postmaster@{mailfrom}"
    domain = sender.rpartition("@")[2]
    return await check_host(
        resolver, ip, domain, sender, helo,
        receiver=receiver, default_explanation=default_explanation, timestamp=timestamp,
    )
