"""Parsing one DMARC policy record, under RFC 7489 or RFC 9989 rules.

Pure functions, no DNS. RFC 9989 (DMARCbis, May 2026) obsoletes RFC 7489 and
RFC 9091, but receivers of both generations are out there, so the parser
takes the rule set as a parameter; the check uses RFC 9989 and still reads
the tags it made historic (pct, rf, ri), because older receivers honour pct.

Problems come in two kinds. ``errors`` make the record wrong (a bad p=, a
duplicate tag, a report address without a scheme); ``warnings`` leave it
usable (unknown or historic tags, an unsupported URI scheme). Each problem
has a stable ``code`` such as ``bad-value(p)`` so tests and reports can name it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from exporter.dns import normalize_name


class Rfc(StrEnum):
    RFC7489 = "rfc7489"
    RFC9989 = "rfc9989"


class Policy(IntEnum):
    """The ``deliverability_dmarc_policy`` encoding (-1, no policy, is ``NO_POLICY``)."""

    NONE = 0
    QUARANTINE = 1
    REJECT = 2


#: The metric value for "no DMARC policy applies".
NO_POLICY = -1

_POLICIES = {"none": Policy.NONE, "quarantine": Policy.QUARANTINE, "reject": Policy.REJECT}

#: The version tag: "v" is case-insensitive (ABNF literal), "DMARC1" is not, no leading space.
_VERSION = re.compile(r"^[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.DOTALL)
_SIZE_SUFFIX = re.compile(r"!(\d+)([kmgtKMGT]?)$")
_LOCAL_PART = re.compile(r"^[^\s@]+$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_UINT32_MAX = 4294967295

#: Tags every rule set knows (np comes from RFC 9091, folded into RFC 9989).
_COMMON_TAGS = frozenset({"v", "p", "sp", "np", "adkim", "aspf", "rua", "ruf", "fo"})
#: Tags RFC 9989 made historic (App. C.5.2) and tags it added.
HISTORIC_TAGS = ("pct", "rf", "ri")
NEW_TAGS = ("psd", "t")


def is_dmarc_record(text: str) -> bool:
    """A TXT string is a DMARC record iff it starts with the v=DMARC1 tag."""
    return _VERSION.match(text) is not None


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    tag: str
    message: str


@dataclass(frozen=True, slots=True)
class ReportUri:
    """One rua/ruf entry."""

    uri: str
    scheme: str = ""
    #: The mailbox of a mailto: URI ("dmarc@example.com"), else "".
    address: str = ""
    #: The domain of the mailbox, normalised; "" when not a usable mailto:.
    domain: str = ""
    #: The obsolete "!10m" size limit, if any.
    size: str = ""

    @property
    def usable(self) -> bool:
        """A mailto: with a well-formed address: something reports can be sent to."""
        return bool(self.domain)


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    text: str
    rfc: Rfc
    is_dmarc: bool
    tags: tuple[tuple[str, str], ...] = ()
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    rua: tuple[ReportUri, ...] = ()
    ruf: tuple[ReportUri, ...] = ()

    def tag(self, name: str) -> str | None:
        """The raw value of a tag (first occurrence), or None."""
        for k, v in self.tags:
            if k == name:
                return v
        return None

    def _policy_tag(self, name: str) -> Policy | None:
        value = self.tag(name)
        return None if value is None else _POLICIES.get(value.lower())

    @property
    def valid(self) -> bool:
        return self.is_dmarc and not self.errors

    @property
    def policy_tags_valid(self) -> bool:
        """p (when required), sp and np all valid and not duplicated."""
        bad = {"p", "sp", "np"}
        for problem in self.errors:
            if problem.tag in bad or problem.code == "missing-p":
                return False
        return True

    @property
    def psd(self) -> str:
        value = (self.tag("psd") or "u").lower() if self.rfc is Rfc.RFC9989 else "u"
        return value if value in ("y", "n", "u") else "u"

    @property
    def testing(self) -> bool:
        """t=y (RFC 9989): receivers apply the policy one level lower."""
        return self.rfc is Rfc.RFC9989 and (self.tag("t") or "n").lower() == "y"

    @property
    def pct(self) -> int:
        """pct= when present and well-formed (0-100), else 100 (its default)."""
        value = self.tag("pct")
        if value is not None and re.fullmatch(r"\d{1,3}", value) and int(value) <= 100:
            return int(value)
        return 100

    def effective(self) -> dict[str, str]:
        """Policy tag values after defaults (p absent: none under RFC 9989), by name."""
        p = self._policy_tag("p")
        if p is None and self.tag("p") is None and self.rfc is Rfc.RFC9989:
            p = Policy.NONE
        sp = self._policy_tag("sp") if self.tag("sp") is not None else p
        np_ = self._policy_tag("np") if self.tag("np") is not None else sp
        names = {v: k for k, v in _POLICIES.items()}
        return {k: names[v] for k, v in (("p", p), ("sp", sp), ("np", np_)) if v is not None}

    def has_valid_rua(self) -> bool:
        return any(u.scheme for u in self.rua)

    def applied_policy(self, *, subdomain: bool = False, exists: bool = True) -> int:
        """The policy a receiver applies to mail from the record's domain or a subdomain.

        ``subdomain``: the author domain is below the domain holding the record
        (an inherited policy); ``exists``: it exists (else np applies). A
        record with a bad p/sp/np counts as p=none when it has a valid rua
        and as no policy otherwise (RFC 7489 §6.6.3, RFC 9989 §4.10.1). t=y
        lowers the result one step (RFC 9989 §4.7).
        """
        if not self.is_dmarc:
            return NO_POLICY
        if not self.policy_tags_valid:
            return int(Policy.NONE) if self.has_valid_rua() else NO_POLICY
        eff = self.effective()
        if "p" not in eff:
            return NO_POLICY
        key = "p" if not subdomain else ("sp" if exists else "np")
        policy = _POLICIES[eff[key]]
        if self.testing:
            policy = Policy(max(0, policy - 1))
        return int(policy)


def _parse_uris(tag: str, value: str, rfc: Rfc, errors: list[Problem],
                warnings: list[Problem]) -> tuple[ReportUri, ...]:
    uris: list[ReportUri] = []
    for raw in value.split(","):
        uri = raw.strip(" \t")
        if not uri:
            warnings.append(Problem(f"empty-uri({tag})", tag, f"{tag}= has an empty entry"))
            continue
        m = _SCHEME.match(uri)
        if not m:
            errors.append(Problem("bad-uri(missing mailto:)", tag,
                                  f"{tag}= entry {uri!r} is not a URI: write mailto:{uri}"))
            continue
        scheme, rest = m.group(1).lower(), m.group(2)
        size = ""
        sm = _SIZE_SUFFIX.search(rest)
        if sm:
            size = sm.group(0)[1:]
            rest = rest[: sm.start()]
            if rfc is Rfc.RFC9989:
                warnings.append(Problem("obsolete-size-suffix", tag,
                                        f"{tag}= entry {uri!r}: the !size limit is obsolete"))
        if scheme != "mailto":
            warnings.append(Problem(f"unsupported-uri-scheme({tag})", tag,
                                    f"{tag}= entry {uri!r}: only mailto: is used; ignored"))
            uris.append(ReportUri(uri, scheme, size=size))
            continue
        address = rest.split("?", 1)[0]
        local, at, host = address.rpartition("@")
        domain = normalize_name(host) if at else ""
        if not (at and _LOCAL_PART.match(local) and _valid_domain(domain)):
            warnings.append(Problem(f"bad-mailto-address({tag})", tag,
                                    f"{tag}= entry {uri!r} has no usable mail address"))
            domain = ""
        uris.append(ReportUri(uri, scheme, address if domain else "", domain, size))
    return tuple(uris)


def _valid_domain(name: str) -> bool:
    labels = name.split(".")
    return len(labels) >= 2 and all(_LABEL.match(label) for label in labels)


def _check_value(tag: str, value: str, rfc: Rfc, errors: list[Problem],
                 warnings: list[Problem]) -> None:
    """Validate one known tag's value, appending to errors/warnings."""
    low = value.lower()
    ok = True
    if tag in ("p", "sp", "np"):
        ok = low in _POLICIES
    elif tag in ("adkim", "aspf"):
        ok = low in ("r", "s")
    elif tag == "psd":
        ok = low in ("y", "n", "u")
    elif tag == "t":
        ok = low in ("y", "n")
    elif tag == "fo":
        options = [o.strip(" \t").lower() for o in value.split(":")]
        ok = all(o in ("0", "1", "d", "s") for o in options) and len(set(options)) == len(options)
        if ok and rfc is Rfc.RFC9989 and "0" in options and "1" in options:
            warnings.append(Problem("fo-0-and-1-mutually-exclusive", tag,
                                    "fo=0 and fo=1 contradict each other; keep one"))
    elif tag == "pct":
        ok = bool(re.fullmatch(r"\d{1,3}", value)) and int(value) <= 100
    elif tag == "ri":
        ok = bool(re.fullmatch(r"\d{1,10}", value)) and int(value) <= _UINT32_MAX
    elif tag == "rf":
        ok = all(f.strip(" \t").lower() == "afrf" for f in value.split(":"))
    if not ok:
        errors.append(Problem(f"bad-value({tag})", tag, f"{tag}={value} is not a valid value"))


def parse_dmarc(text: str, rfc: Rfc = Rfc.RFC9989) -> DmarcRecord:
    """Parse one TXT string found at ``_dmarc.<domain>``."""
    if not is_dmarc_record(text):
        return DmarcRecord(text, rfc, False)
    errors: list[Problem] = []
    warnings: list[Problem] = []
    tags: list[tuple[str, str]] = []
    unknown: list[str] = []
    known = _COMMON_TAGS | set(HISTORIC_TAGS if rfc is Rfc.RFC7489 else NEW_TAGS)
    rua: tuple[ReportUri, ...] = ()
    ruf: tuple[ReportUri, ...] = ()
    for part in text.split(";")[1:]:
        part = part.strip(" \t")
        if not part:
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip(" \t").lower(), value.strip(" \t")
        if not eq or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            errors.append(Problem("syntax", "", f"malformed tag {part!r}"))
            continue
        if any(k == name for k, _ in tags):
            errors.append(Problem("duplicate-tag", name, f"{name}= appears more than once"))
            continue
        if name == "v":
            errors.append(Problem("duplicate-tag", name, "v= appears more than once"))
            continue
        if rfc is Rfc.RFC9989 and name in HISTORIC_TAGS:
            # Kept (pct still matters to RFC 7489 receivers) but not validated.
            warnings.append(Problem(f"removed-tag({name})", name,
                                    f"{name}= is historic in RFC 9989; receivers ignore it"))
            if value:
                tags.append((name, value))
            continue
        if not value:
            warnings.append(Problem(f"empty-value({name})", name, f"{name}= is empty; ignored"))
            continue
        tags.append((name, value))
        if name not in known:
            unknown.append(name)
            continue
        if name in ("rua", "ruf"):
            parsed = _parse_uris(name, value, rfc, errors, warnings)
            if name == "rua":
                rua = parsed
            else:
                ruf = parsed
            continue
        _check_value(name, value, rfc, errors, warnings)
    if unknown:
        warnings.append(Problem("unknown-tags", "", f"unknown tags ignored: {', '.join(unknown)}"))
    names = [k for k, _ in tags]
    if "p" not in names:
        problem = Problem("missing-p", "p", "no p= tag")
        (errors if rfc is Rfc.RFC7489 else warnings).append(problem)
    elif rfc is Rfc.RFC7489 and names[0] != "p":
        errors.append(Problem("p-not-second", "p", "RFC 7489 requires p= right after v="))
    return DmarcRecord(text, rfc, True, (("v", "DMARC1"), *tags), tuple(errors),
                       tuple(warnings), rua, ruf)


def dmarc_texts(txts: tuple[str, ...] | list[str]) -> list[str]:
    """The TXT strings of an RRset that are DMARC records (others are discarded)."""
    return [t for t in txts if is_dmarc_record(t)]


def policy_record(txts: tuple[str, ...] | list[str],
                  rfc: Rfc = Rfc.RFC9989) -> DmarcRecord | None:
    """The one DMARC record of a TXT RRset, or None: none, or several (all discarded)."""
    found = dmarc_texts(txts)
    return parse_dmarc(found[0], rfc) if len(found) == 1 else None
