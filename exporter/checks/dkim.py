"""DKIM: are the configured selectors' public keys published, usable and strong?

Selectors cannot be discovered from the DNS, so they come from config; a
domain without selectors gets no DKIM target. One run reads every selector
of a domain. A selector whose lookup went unanswered is a run error and gets
no samples; the other selectors still report, since their answers are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.checks.dkim_key import (
    MIN_RSA_BITS,
    RECOMMENDED_RSA_BITS,
    SelectorVerdict,
    evaluate_selector,
)
from exporter.config import Config
from exporter.dns import Answer, Outcome

KEY_VALID = "deliverability_dkim_key_valid"
KEY_BITS = "deliverability_dkim_key_bits"
TESTING = "deliverability_dkim_testing"


def selector_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def _publish_hint(name: str) -> str:
    return (
        f"Generate a {RECOMMENDED_RSA_BITS}-bit RSA key (or Ed25519 alongside it) and publish "
        f'{name} TXT "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" '
        "as your signer's setup shows it."
    )


class DkimCheck:
    name: ClassVar[str] = "dkim"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec(KEY_VALID, "1 when the DKIM key at the selector is usable by verifiers "
                   "(one record, RSA >= 1024 bits or Ed25519, not revoked, sha256 allowed).",
                   ("domain", "selector")),
        MetricSpec(KEY_BITS, "Size of the DKIM public key in bits (Ed25519: 256); absent when "
                   "no key could be read (missing, revoked, malformed).", ("domain", "selector")),
        MetricSpec(TESTING, "1 when the DKIM key record has t=y (testing mode).",
                   ("domain", "selector")),
    )

    def targets(self, config: Config) -> list[Target]:
        return [
            Target(self.name, d.name, (("selectors", d.dkim_selectors),))
            for d in config.domains
            if d.dkim_selectors
        ]

    def interval(self, config: Config) -> float:
        return config.dkim.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        findings = Findings()
        domain = target.key
        raw = target.param("selectors", ())
        selectors = tuple(str(s) for s in raw) if isinstance(raw, tuple) else ()
        answers = await asyncio.gather(
            *(ctx.resolver.resolve(selector_name(s, domain), "TXT") for s in selectors)
        )
        for selector, answer in zip(selectors, answers, strict=True):
            if not answer.answered:
                # No sample for this selector: an unanswered lookup says nothing about the key.
                findings.error(
                    f"TXT {answer.name}: {answer.outcome.value}"
                    + (f" ({answer.detail})" if answer.detail else "")
                )
                continue
            record_selector(findings, domain, selector, answer)
        return findings


def record_selector(findings: Findings, domain: str, selector: str, answer: Answer) -> None:
    """Samples and findings for one answered selector lookup."""
    name = selector_name(selector, domain)
    verdict = evaluate_selector(answer.records)
    labels = {"domain": domain, "selector": selector}
    findings.add(KEY_VALID, verdict.valid, **labels)
    key = verdict.key
    findings.add(TESTING, bool(key and key.testing), **labels)
    if key is not None and key.bits is not None:
        findings.add(KEY_BITS, key.bits, **labels)
    _note(findings, name, answer, verdict)


def _evidence(name: str, records: Sequence[str]) -> str:
    return "\n".join(f'{name} TXT "{r}"' for r in records)


def _note(findings: Findings, name: str, answer: Answer, verdict: SelectorVerdict) -> None:
    key = verdict.key
    if not answer.records:
        what = "does not exist" if answer.outcome is Outcome.NXDOMAIN else "has no TXT record"
        findings.note(
            Status.FAIL, f"DKIM selector {name} has no key",
            evidence=f"{name} TXT: {answer.outcome.value} ({what})",
            fix=_publish_hint(name) + " Or remove the selector from the config if it is unused.",
        )
        return
    evidence = _evidence(name, verdict.records)
    if key is None:
        findings.note(
            Status.FAIL, f"DKIM selector {name}: {verdict.problem}", evidence=evidence,
            fix=f"Keep exactly one TXT record at {name}: the key your signer uses.",
        )
        return
    if key.revoked:
        findings.note(
            Status.FAIL, f"DKIM key {name} is revoked (empty p=)", evidence=evidence,
            fix=f"If this selector still signs mail, publish its key at {name}; "
                "otherwise stop signing with it and drop it from the config.",
        )
        return
    if not key.valid:
        fix = _publish_hint(name)
        if key.key_type == "rsa" and key.bits is not None and key.bits < MIN_RSA_BITS:
            fix = (f"Generate a {RECOMMENDED_RSA_BITS}-bit RSA key, publish it at {name} "
                   "(or a new selector) and switch the signer to it.")
        elif any(p.startswith("h=") for p in key.problems):
            fix = f"Remove h= from {name} (or set h=sha256) and sign with rsa-sha256."
        findings.note(Status.FAIL, f"DKIM key {name} is unusable: {verdict.problem}",
                      evidence=evidence, fix=fix)
        return
    for warning in key.warnings:
        if warning.startswith("t=y"):
            fix = f"When signing works, remove t=y from {name}."
        else:
            fix = (f"Generate a {RECOMMENDED_RSA_BITS}-bit RSA key, publish it under a new "
                   "selector and switch the signer to it.")
        findings.note(Status.WARN, f"DKIM key {name}: {warning}", evidence=evidence, fix=fix)
    size = f"{key.bits}-bit " if key.bits else ""
    findings.note(Status.PASS, f"DKIM key {name}: {size}{key.key_type} key published",
                  evidence=evidence)
