"""What the big receivers demand of senders, evaluated from what the checks saw.

Each provider profile lists the requirements DNS and SMTP can show from the
outside, mapped to samples the checks already recorded in the store; the rest
(spam rate, one-click unsubscribe, From alignment inside real messages,
message formatting) is listed as ``not_visible`` and never guessed.

``required=False`` marks what a receiver recommends rather than enforces, and
anything whose published wording is ambiguous: a profile never claims more
than its source says.

This is deliberately *not* a check: it runs no lookups of its own, it reads
other checks' results. A requirement whose inputs are missing (the check did
not run, or its last run failed) is unknown: no series for it, and the
provider's ``compliant`` is not emitted while any *required* input is unknown.

Sources (as published by the receivers, checked late 2026):

- Gmail: https://support.google.com/a/answer/81126 (Email sender guidelines)
  and https://support.google.com/a/answer/14229414 (FAQ: from November 2025
  non-compliant traffic gets temporary and then permanent rejections).
- Yahoo: https://senders.yahooinc.com/best-practices/ (sender requirements,
  February 2024).
- Microsoft Outlook.com high-volume senders (May 2025):
  https://techcommunity.microsoft.com/blog/microsoftdefenderforoffice365blog/strengthening-email-ecosystem-outlook%E2%80%99s-new-requirements-for-high%E2%80%90volume-senders/4399730
- Apple iCloud Mail: https://support.apple.com/en-us/102322 (postmaster information).
- La Poste: https://postmaster.laposte.net/ ; GMX and WEB.DE:
  https://postmaster.gmx.net/ and https://postmaster.web.de/ (1&1 Mail & Media).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from exporter.checks.base import MetricSpec, Sample
from exporter.config import Config, DomainConfig
from exporter.store import Entry, Store

REQUIREMENT_MET = "deliverability_provider_requirement_met"
COMPLIANT = "deliverability_provider_compliant"

PROVIDER_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(REQUIREMENT_MET,
               "1 when the domain meets the provider requirement as far as DNS and SMTP show "
               "it, 0 when not; absent when an input check did not run or failed. Computed "
               "from cached check results.",
               ("domain", "provider", "requirement")),
    MetricSpec(COMPLIANT,
               "1 when every required, externally visible requirement of the provider is met; "
               "absent while any required input is unknown. Spam rate, unsubscribe headers "
               "and message alignment cannot be seen from outside and are not included.",
               ("domain", "provider")),
)

#: Three-valued: True met, False not met, None unknown (input missing or failed).
Tri = bool | None


@dataclass(frozen=True, slots=True)
class Fact:
    value: Tri
    detail: str


@dataclass(frozen=True, slots=True)
class RequirementVerdict:
    name: str
    description: str
    required: bool
    met: Tri
    detail: str


@dataclass(frozen=True, slots=True)
class ProviderVerdict:
    domain: str
    provider: str
    provider_name: str
    requirements: tuple[RequirementVerdict, ...]
    #: None while a required requirement is unknown.
    compliant: Tri
    not_visible: tuple[str, ...]
    notes: str = ""


@dataclass(frozen=True, slots=True)
class Requirement:
    name: str
    description: str
    required: bool = True


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    name: str
    requirements: tuple[Requirement, ...]
    not_visible: tuple[str, ...]
    notes: str = ""


# -- requirements, by stable snake_case name ----------------------------------

SPF_VALID = "spf_valid"
SPF_AUTHORIZED = "spf_authorized"
DKIM_VALID = "dkim_valid"
DKIM_KEY_1024 = "dkim_key_1024"
DKIM_KEY_2048 = "dkim_key_2048"
DMARC_PRESENT = "dmarc_present"
DMARC_POLICY_ENFORCED = "dmarc_policy_enforced"
PTR_PRESENT = "ptr_present"
FCRDNS_VALID = "fcrdns_valid"
HELO_ALIGNED = "helo_aligned"
NOT_LISTED = "not_listed"
MX_STARTTLS = "mx_starttls"

DESCRIPTIONS: dict[str, str] = {
    SPF_VALID: "exactly one valid SPF record within the 10-lookup limit",
    SPF_AUTHORIZED: "SPF passes for every configured sending IP",
    DKIM_VALID: "every configured DKIM selector publishes a usable key",
    DKIM_KEY_1024: "DKIM keys are at least 1024 bits (RSA) or Ed25519",
    DKIM_KEY_2048: "DKIM RSA keys are 2048 bits (recommended)",
    DMARC_PRESENT: "a valid DMARC record applies (p=none at least)",
    DMARC_POLICY_ENFORCED: "DMARC policy is quarantine or reject",
    PTR_PRESENT: "every sending IP has a PTR record",
    FCRDNS_VALID: "every sending IP's PTR resolves back to it (FCrDNS)",
    HELO_ALIGNED: "the HELO name matches the PTR and resolves back",
    NOT_LISTED: "no sending IP (nor the domain) is on a healthy blocklist",
    MX_STARTTLS: "the domain's own MX hosts offer STARTTLS (only a hint: the sending side "
                 "cannot be tested from outside)",
}

_NOT_VISIBLE_BULK = (
    "spam rate reported by the receiver (must stay below 0.3 %, ideally below 0.1 %)",
    "one-click unsubscribe (RFC 8058 List-Unsubscribe-Post) in marketing messages",
    "DMARC alignment of the From: domain with SPF or DKIM in real messages",
    "TLS on the sending connection (only the domain's own MX can be tested)",
    "RFC 5322 message formatting",
)


def _req(name: str, required: bool = True) -> Requirement:
    return Requirement(name, DESCRIPTIONS[name], required)


#: GMX and WEB.DE are one operator (1&1 Mail & Media) with one set of rules.
_UNITED_INTERNET_REQUIREMENTS = (
    _req(PTR_PRESENT), _req(FCRDNS_VALID), _req(HELO_ALIGNED, False), _req(NOT_LISTED),
    _req(SPF_VALID, False), _req(SPF_AUTHORIZED, False), _req(DKIM_VALID, False),
    _req(DMARC_PRESENT, False),
)
_UNITED_INTERNET_NOT_VISIBLE = (
    "RFC-compliant message headers (a valid Message-ID and Date)",
    "an imprint (Impressum) on the website of the PTR domain",
    "complaint rate",
)

PROFILES: tuple[Profile, ...] = (
    Profile(
        "gmail", "Gmail (senders of 5,000+ messages a day)",
        (_req(SPF_VALID), _req(SPF_AUTHORIZED), _req(DKIM_VALID), _req(DKIM_KEY_1024),
         _req(DKIM_KEY_2048, False), _req(DMARC_PRESENT), _req(DMARC_POLICY_ENFORCED, False),
         _req(PTR_PRESENT), _req(FCRDNS_VALID), _req(NOT_LISTED, False),
         _req(MX_STARTTLS, False)),
        _NOT_VISIBLE_BULK,
        "Requirements since February 2024; from November 2025 Gmail rejects non-compliant "
        "traffic (4.7.x deferrals ramping to 5.7.x rejections) instead of only deferring it.",
    ),
    Profile(
        "yahoo", "Yahoo and AOL (bulk senders)",
        (_req(SPF_VALID), _req(SPF_AUTHORIZED), _req(DKIM_VALID), _req(DKIM_KEY_1024),
         _req(DMARC_PRESENT), _req(DMARC_POLICY_ENFORCED, False), _req(PTR_PRESENT),
         _req(FCRDNS_VALID), _req(NOT_LISTED, False)),
        _NOT_VISIBLE_BULK,
        "Requirements since February 2024.",
    ),
    Profile(
        "outlook", "Microsoft Outlook.com (high-volume senders)",
        (_req(SPF_VALID), _req(SPF_AUTHORIZED), _req(DKIM_VALID), _req(DKIM_KEY_1024),
         _req(DMARC_PRESENT), _req(PTR_PRESENT, False), _req(FCRDNS_VALID, False),
         _req(NOT_LISTED, False)),
        (
            "DMARC alignment of the From: domain with SPF or DKIM in real messages",
            "functional unsubscribe links and list hygiene",
            "volume: the rules apply from 5,000 messages a day to Outlook.com consumer domains",
        ),
        "Enforced since May 2025: non-compliant mail is rejected with 550 5.7.515.",
    ),
    Profile(
        "icloud", "Apple iCloud Mail",
        (_req(SPF_VALID), _req(SPF_AUTHORIZED), _req(DKIM_VALID), _req(DKIM_KEY_1024),
         _req(DMARC_PRESENT), _req(PTR_PRESENT, False), _req(FCRDNS_VALID, False),
         _req(NOT_LISTED, False)),
        (
            "DMARC alignment of the From: domain in real messages",
            "one-click unsubscribe for bulk mail",
            "complaint rate and content of messages",
        ),
    ),
    Profile(
        "laposte", "La Poste (laposte.net)",
        (_req(SPF_VALID), _req(SPF_AUTHORIZED), _req(DKIM_VALID), _req(DKIM_KEY_1024),
         _req(DMARC_PRESENT, False), _req(PTR_PRESENT), _req(FCRDNS_VALID),
         _req(NOT_LISTED, False)),
        (
            "DMARC alignment of the From: domain in real messages",
            "unsubscribe links and complaint rate",
        ),
    ),
    Profile(
        "gmx", "GMX (1&1 Mail & Media)",
        _UNITED_INTERNET_REQUIREMENTS,
        _UNITED_INTERNET_NOT_VISIBLE,
        "GMX and WEB.DE reject IPs without a valid PTR/FCrDNS at connection time (554 "
        "'Bad DNS PTR resource record').",
    ),
    Profile(
        "webde", "WEB.DE (1&1 Mail & Media)",
        _UNITED_INTERNET_REQUIREMENTS,
        _UNITED_INTERNET_NOT_VISIBLE,
    ),
)


def profile(provider_id: str) -> Profile | None:
    return next((p for p in PROFILES if p.id == provider_id), None)


# -- facts: what the store says, three-valued ----------------------------------

Index = dict[tuple[str, str], Entry]


def _index(entries: Iterable[Entry]) -> Index:
    return {(e.check, e.target): e for e in entries}


def _good(index: Index, check: str, target: str) -> Entry | None:
    """The entry only if its last run succeeded: a failed run's samples are not evidence."""
    entry = index.get((check, target))
    return entry if entry is not None and entry.success else None


def _values(entry: Entry, metric: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(s.labels), s.value) for s in entry.samples.values() if s.metric == metric]


def _all(facts: Sequence[Fact]) -> Fact:
    """False if any input is False (a definite no), else None if any unknown, else True."""
    if not facts:
        return Fact(None, "no input")
    failing = [f.detail for f in facts if f.value is False]
    if failing:
        return Fact(False, "; ".join(failing))
    unknown = [f.detail for f in facts if f.value is None]
    if unknown:
        return Fact(None, "; ".join(unknown))
    return Fact(True, "; ".join(f.detail for f in facts))


def _metric_fact(
    index: Index, check: str, target: str, metric: str, ok: Callable[[float], bool],
    what: str, label: str = "",
) -> Fact:
    """Every sample of ``metric`` in the (check, target) entry must satisfy ``ok``."""
    entry = _good(index, check, target)
    if entry is None:
        state = "did not run" if (check, target) not in index else "last run failed"
        return Fact(None, f"{check} on {target} {state}")
    values = _values(entry, metric)
    if not values:
        return Fact(None, f"{check} on {target} recorded no {what}")
    bad = [labels.get(label, target) if label else target for labels, v in values if not ok(v)]
    if bad:
        return Fact(False, f"{what}: not met for {', '.join(sorted(set(bad)))}")
    return Fact(True, f"{what}: met for {target}")


def sending_targets(domain: DomainConfig, config: Config) -> list[str]:
    """The configured senders (ptr/dnsbl targets) that send for ``domain``.

    A domain's ``senders`` list (its SPF senders) picks them when it names
    configured senders; otherwise every configured sender counts.
    """
    keys = [s.ip or s.host for s in config.senders]
    chosen = [k for k in domain.senders if k in keys]
    return chosen or keys


SenderFacts = tuple[Fact, Fact, Fact, tuple[Fact, ...]]


def _sender_facts(index: Index, senders: list[str]) -> SenderFacts:
    """PTR, FCrDNS, HELO and per-sender listing facts of a list of senders.

    Most domains share one list (every configured sender), so one evaluation
    computes this once per distinct list, not once per domain.
    """
    return (
        _all([_metric_fact(index, "ptr", s, "deliverability_ptr_present",
                           lambda v: v == 1, "PTR present", "ip") for s in senders]),
        _all([_metric_fact(index, "ptr", s, "deliverability_fcrdns_valid",
                           lambda v: v == 1, "FCrDNS valid", "ip") for s in senders]),
        _all([_metric_fact(index, "ptr", s, "deliverability_helo_aligned",
                           lambda v: v == 1, "HELO aligned", "ip") for s in senders]),
        tuple(_metric_fact(index, "dnsbl", s, "deliverability_dnsbl_listings",
                           lambda v: v == 0, "not listed", "ip") for s in senders),
    )


def domain_facts(
    index: Index, domain: DomainConfig, config: Config,
    sender_cache: dict[tuple[str, ...], SenderFacts] | None = None,
) -> dict[str, Fact]:
    d = domain.name
    senders = sending_targets(domain, config)
    facts: dict[str, Fact] = {}
    facts[SPF_VALID] = _metric_fact(index, "spf", d, "deliverability_spf_valid",
                                    lambda v: v == 1, "SPF record valid")
    facts[SPF_AUTHORIZED] = (
        _metric_fact(index, "spf", d, "deliverability_spf_authorized", lambda v: v == 1,
                     "SPF pass", "ip")
        if domain.senders else Fact(None, "no senders configured for the domain")
    )
    if domain.dkim_selectors:
        facts[DKIM_VALID] = _metric_fact(index, "dkim", d, "deliverability_dkim_key_valid",
                                         lambda v: v == 1, "DKIM key usable", "selector")
        # Ed25519 keys report 256 bits and are fine: only small RSA keys are short.
        facts[DKIM_KEY_1024] = _metric_fact(index, "dkim", d, "deliverability_dkim_key_bits",
                                            lambda v: v == 256 or v >= 1024,
                                            "DKIM key >= 1024 bits", "selector")
        facts[DKIM_KEY_2048] = _metric_fact(index, "dkim", d, "deliverability_dkim_key_bits",
                                            lambda v: v == 256 or v >= 2048,
                                            "DKIM key >= 2048 bits", "selector")
    else:
        none = Fact(None, "no DKIM selector configured: DKIM cannot be seen without one")
        facts[DKIM_VALID] = facts[DKIM_KEY_1024] = facts[DKIM_KEY_2048] = none
    facts[DMARC_PRESENT] = _metric_fact(index, "dmarc", d, "deliverability_dmarc_policy",
                                        lambda v: v >= 0, "DMARC policy published")
    facts[DMARC_POLICY_ENFORCED] = _metric_fact(index, "dmarc", d,
                                                "deliverability_dmarc_policy",
                                                lambda v: v >= 1, "DMARC quarantine/reject")
    if senders:
        key = tuple(senders)
        if sender_cache is None or key not in sender_cache:
            computed = _sender_facts(index, senders)
            if sender_cache is None:
                sender_cache = {}
            sender_cache[key] = computed
        per_sender = sender_cache[key]
        facts[PTR_PRESENT], facts[FCRDNS_VALID], facts[HELO_ALIGNED] = per_sender[:3]
        listed = list(per_sender[3])
        domain_entry = _good(index, "dnsbl", d)
        if domain_entry is not None and _values(domain_entry, "deliverability_dnsbl_domain_listed"):
            listed.append(_metric_fact(index, "dnsbl", d, "deliverability_dnsbl_domain_listed",
                                       lambda v: v == 0, "domain not listed", "zone"))
        facts[NOT_LISTED] = _all(listed)
    else:
        none = Fact(None, "no sending IP configured")
        facts[PTR_PRESENT] = facts[FCRDNS_VALID] = facts[HELO_ALIGNED] = none
        facts[NOT_LISTED] = none
    facts[MX_STARTTLS] = _metric_fact(index, "smtp", d, "deliverability_smtp_starttls",
                                      lambda v: v == 1, "STARTTLS offered", "mx")
    return facts


def evaluate(entries: Iterable[Entry], config: Config) -> list[ProviderVerdict]:
    """Every provider profile for every configured domain, from stored check results."""
    index = _index(entries)
    verdicts: list[ProviderVerdict] = []
    sender_cache: dict[tuple[str, ...], SenderFacts] = {}
    for domain in config.domains:
        facts = domain_facts(index, domain, config, sender_cache)
        for prof in PROFILES:
            reqs = tuple(
                RequirementVerdict(r.name, r.description, r.required, facts[r.name].value,
                                   facts[r.name].detail)
                for r in prof.requirements
            )
            required = [r.met for r in reqs if r.required]
            compliant: Tri
            if any(m is False for m in required):
                compliant = False
            elif any(m is None for m in required):
                compliant = None
            else:
                compliant = True
            verdicts.append(ProviderVerdict(domain.name, prof.id, prof.name, reqs, compliant,
                                            prof.not_visible, prof.notes))
    return verdicts


def verdict_samples(verdicts: Iterable[ProviderVerdict]) -> list[Sample]:
    samples: list[Sample] = []
    for v in verdicts:
        for r in v.requirements:
            if r.met is None:
                continue
            labels = (("domain", v.domain), ("provider", v.provider), ("requirement", r.name))
            samples.append(Sample(REQUIREMENT_MET, labels, float(r.met)))
        # People see a definite "no" early (report, status page); the metric waits until
        # every required input is known, so an alert never fires on a partial picture.
        if v.compliant is not None and all(r.met is not None for r in v.requirements
                                           if r.required):
            samples.append(Sample(COMPLIANT, (("domain", v.domain), ("provider", v.provider)),
                                  float(v.compliant)))
    return samples


def provider_samples(store: Store, config: Config) -> list[Sample]:
    """The provider metrics, for the collector to render on /metrics."""
    return verdict_samples(evaluate(store.snapshot(), config))
