"""Provider requirement profiles: evaluated from stored results, never guessed."""

from __future__ import annotations

from exporter.checks.base import Result, Sample
from exporter.config import Config, parse_config_text
from exporter.providers import (
    COMPLIANT,
    PROFILES,
    REQUIREMENT_MET,
    ProviderVerdict,
    evaluate,
    provider_samples,
)
from exporter.store import Store

CONFIG = """
senders:
  - ip: 192.0.2.10
domains:
  - name: example.com
    dkim_selectors: [s1]
    senders: [192.0.2.10]
"""


def sample(metric: str, value: float, **labels: str) -> Sample:
    return Sample(metric, tuple(sorted(labels.items())), value)


def result(check: str, target: str, *samples: Sample, success: bool = True) -> Result:
    return Result(check, target, success, 0.01, 1000.0, tuple(samples),
                  () if success else ("lookup failed: TXT x: timeout",))


def good_results(**overrides: float) -> list[Result]:
    """Results of a fully compliant domain; overrides change one sample value by metric."""
    v: dict[str, float] = {
        "spf_valid": 1, "spf_authorized": 1, "dkim_key_valid": 1, "dkim_key_bits": 2048,
        "dmarc_policy": 0, "ptr_present": 1, "fcrdns_valid": 1, "helo_aligned": 1,
        "listings": 0, "smtp_starttls": 1,
    }
    v.update(overrides)
    d, ip = "example.com", "192.0.2.10"
    return [
        result("spf", d, sample("deliverability_spf_valid", v["spf_valid"], domain=d),
               sample("deliverability_spf_authorized", v["spf_authorized"], domain=d, ip=ip)),
        result("dkim", d,
               sample("deliverability_dkim_key_valid", v["dkim_key_valid"], domain=d,
                      selector="s1"),
               sample("deliverability_dkim_key_bits", v["dkim_key_bits"], domain=d,
                      selector="s1")),
        result("dmarc", d, sample("deliverability_dmarc_policy", v["dmarc_policy"], domain=d)),
        result("ptr", ip, sample("deliverability_ptr_present", v["ptr_present"], ip=ip),
               sample("deliverability_fcrdns_valid", v["fcrdns_valid"], ip=ip),
               sample("deliverability_helo_aligned", v["helo_aligned"], ip=ip, helo="mx.x")),
        result("dnsbl", ip, sample("deliverability_dnsbl_listings", v["listings"], ip=ip)),
        result("smtp", d, sample("deliverability_smtp_starttls", v["smtp_starttls"], domain=d,
                                 mx="mx.example.com")),
    ]


def store_of(results: list[Result]) -> Store:
    store = Store()
    for r in results:
        store.update(r)
    return store


def config(text: str = CONFIG) -> Config:
    return parse_config_text(text)


def verdict(verdicts: list[ProviderVerdict], provider: str) -> ProviderVerdict:
    return next(v for v in verdicts if v.provider == provider)


def met(samples: list[Sample], provider: str, requirement: str) -> float | None:
    for s in samples:
        labels = dict(s.labels)
        if (s.metric == REQUIREMENT_MET and labels["provider"] == provider
                and labels["requirement"] == requirement):
            return s.value
    return None


def compliant(samples: list[Sample], provider: str) -> float | None:
    for s in samples:
        if s.metric == COMPLIANT and dict(s.labels)["provider"] == provider:
            return s.value
    return None


def test_a_fully_configured_good_domain_is_compliant_everywhere() -> None:
    samples = provider_samples(store_of(good_results()), config())
    for prof in PROFILES:
        assert compliant(samples, prof.id) == 1.0, prof.id
    assert met(samples, "gmail", "dmarc_present") == 1.0
    assert met(samples, "gmail", "dkim_key_2048") == 1.0


def test_every_profile_names_the_things_that_cannot_be_seen() -> None:
    for prof in PROFILES:
        assert prof.not_visible, prof.id
    gmail = next(p for p in PROFILES if p.id == "gmail")
    assert any("spam rate" in t for t in gmail.not_visible)
    assert any("unsubscribe" in t for t in gmail.not_visible)
    assert "November 2025" in gmail.notes


def test_a_failed_dmarc_run_gives_no_series_and_no_compliance() -> None:
    results = [r for r in good_results() if r.check != "dmarc"]
    results.append(result("dmarc", "example.com", success=False))
    samples = provider_samples(store_of(results), config())
    assert met(samples, "gmail", "dmarc_present") is None
    assert compliant(samples, "gmail") is None
    # GMX only recommends DMARC: its verdict does not depend on it.
    assert compliant(samples, "gmx") == 1.0


def test_a_failed_run_after_a_good_one_is_not_evidence() -> None:
    store = store_of(good_results())
    store.update(result("spf", "example.com", success=False))
    samples = provider_samples(store, config())
    # The store keeps the stale samples for /metrics, but a verdict needs a fresh answer.
    assert met(samples, "gmail", "spf_valid") is None
    assert compliant(samples, "gmail") is None


def test_without_dkim_selectors_dkim_is_unknown_not_failed() -> None:
    text = CONFIG.replace("    dkim_selectors: [s1]\n", "")
    results = [r for r in good_results() if r.check != "dkim"]
    samples = provider_samples(store_of(results), config(text))
    assert met(samples, "gmail", "dkim_valid") is None
    assert compliant(samples, "gmail") is None
    v = verdict(evaluate(store_of(results).snapshot(), config(text)), "gmail")
    dkim = next(r for r in v.requirements if r.name == "dkim_valid")
    assert "selector" in dkim.detail


def test_missing_ptr_breaks_gmail_and_gmx() -> None:
    samples = provider_samples(store_of(good_results(ptr_present=0, fcrdns_valid=0)), config())
    assert met(samples, "gmail", "ptr_present") == 0.0
    assert compliant(samples, "gmail") == 0.0
    assert compliant(samples, "gmx") == 0.0
    # Outlook only recommends PTR.
    assert compliant(samples, "outlook") == 1.0


def test_short_dkim_keys_fail_and_ed25519_passes() -> None:
    short = provider_samples(store_of(good_results(dkim_key_bits=768)), config())
    assert met(short, "gmail", "dkim_key_1024") == 0.0
    assert compliant(short, "gmail") == 0.0
    ed = provider_samples(store_of(good_results(dkim_key_bits=256)), config())
    assert met(ed, "gmail", "dkim_key_1024") == 1.0
    mid = provider_samples(store_of(good_results(dkim_key_bits=1024)), config())
    assert met(mid, "gmail", "dkim_key_1024") == 1.0
    assert met(mid, "gmail", "dkim_key_2048") == 0.0
    assert compliant(mid, "gmail") == 1.0  # 2048 is recommended, not required


def test_a_listing_is_required_for_gmx_but_recommended_for_gmail() -> None:
    samples = provider_samples(store_of(good_results(listings=1)), config())
    assert met(samples, "gmail", "not_listed") == 0.0
    assert compliant(samples, "gmail") == 1.0
    assert compliant(samples, "gmx") == 0.0


def test_dmarc_policy_none_is_present_but_not_enforced() -> None:
    samples = provider_samples(store_of(good_results(dmarc_policy=0)), config())
    assert met(samples, "gmail", "dmarc_present") == 1.0
    assert met(samples, "gmail", "dmarc_policy_enforced") == 0.0
    no_policy = provider_samples(store_of(good_results(dmarc_policy=-1)), config())
    assert met(no_policy, "gmail", "dmarc_present") == 0.0
    assert compliant(no_policy, "gmail") == 0.0


def test_spf_not_authorising_the_sender_fails() -> None:
    samples = provider_samples(store_of(good_results(spf_authorized=0)), config())
    assert met(samples, "yahoo", "spf_authorized") == 0.0
    assert compliant(samples, "yahoo") == 0.0


def test_a_definite_no_shows_in_the_verdict_even_with_unknown_inputs() -> None:
    results = [r for r in good_results(ptr_present=0) if r.check != "dmarc"]
    v = verdict(evaluate(store_of(results).snapshot(), config()), "gmail")
    assert v.compliant is False
    # ...but the metric waits until every required input is known.
    assert compliant(provider_samples(store_of(results), config()), "gmail") is None


def test_no_senders_means_ip_requirements_are_unknown() -> None:
    text = """
domains:
  - name: example.com
    dkim_selectors: [s1]
"""
    results = [r for r in good_results() if r.check not in ("ptr", "dnsbl")]
    samples = provider_samples(store_of(results), config(text))
    assert met(samples, "gmail", "ptr_present") is None
    assert met(samples, "gmail", "spf_authorized") is None
    assert compliant(samples, "gmail") is None


def test_sample_labels_are_the_contract() -> None:
    samples = provider_samples(store_of(good_results()), config())
    names = {s.metric for s in samples}
    assert names == {"deliverability_provider_requirement_met",
                     "deliverability_provider_compliant"}
    for s in samples:
        keys = tuple(k for k, _ in s.labels)
        if s.metric == REQUIREMENT_MET:
            assert keys == ("domain", "provider", "requirement")
        else:
            assert keys == ("domain", "provider")
        assert s.value in (0.0, 1.0)
