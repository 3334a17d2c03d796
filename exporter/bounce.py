"""``deliverability-exporter explain``: what a bounce means, and which check shows why.

The patterns (exporter/bounce_patterns.py) are data written from the receivers'
published texts; this module normalises a bounce, matches them, finds the
sending IP, sender domain and DKIM selector in it, and runs the checks the
matches point to through the ``check`` machinery (exporter/report.py).

Bounces arrive wrapped by the sending MTA, with continuation lines
("550-5.7.26 ...") and line breaks inside sentences, so matching works on a
normalised text with the continuation codes removed, and codes are looked
up separately.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from exporter.bounce_patterns import PATTERNS, Pattern
from exporter.config import ConfigError, build_config, valid_hostname
from exporter.dns import Resolver
from exporter.report import (
    FAIL,
    Report,
    add_target_arguments,
    build_report,
    raw_config,
    render_text,
    report_json,
    run_checks,
    use_color,
)

#: Enhanced status code (RFC 3463), optionally preceded by a basic reply code.
_CODE_RE = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)")
#: Continuation prefixes "550-5.7.26 " / "550 5.7.1 " / "421-" that break prose.
_PREFIX_RE = re.compile(r"(?m)(?:^|(?<=\s))[245]\d\d[- ](?:[245]\.\d{1,3}\.\d{1,3}\s+)?")
_IP_PATTERNS = (
    r"client host \[([0-9a-f:.]+)\]",
    r"ip: ?\[([0-9a-f:.]+)\]",
    r"\bip[=:] ?\[?([0-9a-f:.]+)\]?",
    r"query/ip/([0-9a-f:.]+)",
    r"messages from \[?([0-9a-f:.]+)\]?",
    r"connections will not be accepted from \[?([0-9a-f:.]+)\]?",
    r"sending ip \[?([0-9a-f:.]+)\]?",
    r"\[([0-9a-f:.]+)\]",
)
_DOMAIN_PATTERNS = (
    r"email from ([a-z0-9.-]+\.[a-z]{2,}) is not accepted",
    r"sending domain \[?<?([a-z0-9.-]+\.[a-z]{2,})",
    r"SPF check for \[([a-z0-9.-]+\.[a-z]{2,})\]",
    r"from domain ([a-z0-9.-]+\.[a-z]{2,})",
    r"domain of (?:[^\s@<>]+@)?([a-z0-9.-]+\.[a-z]{2,})",
    r"smtp\.mailfrom=(?:[^\s@;]+@)?([a-z0-9.-]+\.[a-z]{2,})",
    r"header\.from=([a-z0-9.-]+\.[a-z]{2,})",
    r"^From:[^\n@]*@([a-z0-9.-]+\.[a-z]{2,})",
    r"^Return-Path:\s*<?[^\s@<>]+@([a-z0-9.-]+\.[a-z]{2,})",
    # The old openspf.net "Why?" links Postfix policy daemons still print.
    r"[?;]id=[^@;\s]+@([a-z0-9.-]+\.[a-z]{2,})",
)


@dataclass(frozen=True, slots=True)
class Match:
    pattern: Pattern
    codes: tuple[str, ...]


@dataclass(slots=True)
class Explanation:
    matches: list[Match] = field(default_factory=list)
    codes: tuple[str, ...] = ()
    ip: str = ""
    domain: str = ""
    #: From a DKIM-Signature header quoted in the bounce (s= tag), if any.
    selector: str = ""

    @property
    def recognised(self) -> bool:
        return bool(self.matches)

    @property
    def checks(self) -> tuple[str, ...]:
        """The checks to run, most specific match first, without duplicates."""
        ordered: list[str] = []
        for m in self.matches:
            for c in m.pattern.checks:
                if c not in ordered:
                    ordered.append(c)
        return tuple(ordered)


def prose(text: str) -> str:
    """The bounce as one line of prose: continuation codes removed, whitespace collapsed."""
    return " ".join(_PREFIX_RE.sub(" ", text).split())


def find_codes(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_CODE_RE.findall(text)))


def _public_ip(candidate: str) -> str:
    """The address in canonical form, or "" for non-addresses and ones no sender has."""
    try:
        addr = ipaddress.ip_address(candidate.strip("."))
    except ValueError:
        return ""
    if addr.is_unspecified or addr.is_loopback:
        return ""
    return str(addr)


#: "host mx.example[IP] said" (Postfix) / "by mx.example [IP]": the receiver, not the sender.
_RECEIVER_IP_RE = re.compile(r"\b(?:host|by)\s+[a-z0-9.-]+\s?\[([0-9a-f:.]+)\]", re.IGNORECASE)


def find_ip(text: str) -> str:
    """The sending IP the receiver complains about (never the receiving MX's own address)."""
    receivers = {_public_ip(m.group(1)) for m in _RECEIVER_IP_RE.finditer(text)}
    for pattern in _IP_PATTERNS:
        for source in (text, prose(text)):  # prose: phrases broken over wrapped lines
            for m in re.finditer(pattern, source, re.IGNORECASE):
                ip = _public_ip(m.group(1))
                if ip and ip not in receivers:
                    return ip
    return ""


def find_domain(text: str) -> str:
    for pattern in _DOMAIN_PATTERNS:
        sources = (text, prose(text))
        for m in (m for src in sources
                  for m in re.finditer(pattern, src, re.IGNORECASE | re.MULTILINE)):
            try:
                return valid_hostname(m.group(1).strip("."))
            except ValueError:
                continue
    return ""


def _matches(p: Pattern, codes: tuple[str, ...], line: str, raw: str) -> Match | None:
    hit_codes = tuple(c for c in codes if c in p.codes)
    if p.codes and not hit_codes:
        return None
    if p.text and not re.search(p.text, line, re.IGNORECASE):
        return None
    if p.receiver_hint and not re.search(p.receiver_hint, raw, re.IGNORECASE):
        return None
    return Match(p, hit_codes)


def explain(text: str) -> Explanation:
    """Every pattern the bounce matches, most specific first; plus the IP and domain in it."""
    codes = find_codes(text)
    line = prose(text)
    found = [m for p in PATTERNS if (m := _matches(p, codes, line, text)) is not None]
    # A receiver-specific match makes catch-all and generic wording matches noise.
    best = min((m.pattern.tier for m in found), default=0)
    chosen = [m for m in found if m.pattern.tier == best]
    # gmail-dmarc-policy and gmail-unauthenticated share 5.7.26: keep the more specific one.
    if any(m.pattern.id == "gmail-dmarc-policy" for m in chosen):
        chosen = [m for m in chosen if m.pattern.id != "gmail-unauthenticated"]
    chosen.sort(key=lambda m: -m.pattern.specificity)
    return Explanation(chosen, codes, find_ip(text), find_domain(text), find_selector(text))


_DKIM_SIG_RE = re.compile(r"DKIM-Signature:(.*?)(?:\n\S|\Z)", re.IGNORECASE | re.DOTALL)


def find_selector(text: str) -> str:
    """The s= of the first DKIM-Signature header in the bounce (the original's headers)."""
    m = _DKIM_SIG_RE.search(text)
    if m is None:
        return ""
    tag = re.search(r"(?:^|;)\s*s\s*=\s*([A-Za-z0-9._-]+)", m.group(1))
    return tag.group(1).lower() if tag else ""


#: Checks whose targets are the sender domain, and those whose targets are sending IPs.
DOMAIN_CHECKS = frozenset({"spf", "dkim", "dmarc", "mx", "smtp", "mta_sts", "tlsrpt", "dane",
                           "dnssec", "bimi"})
IP_CHECKS = frozenset({"dnsbl", "ptr"})


def skipped(e: Explanation, domain: str, ips: Sequence[str], selectors: Sequence[str]
            ) -> list[str]:
    """Why some matching checks cannot run: said, not silently dropped."""
    notes: list[str] = []
    need_domain = [c for c in e.checks if c in DOMAIN_CHECKS]
    need_ip = [c for c in e.checks if c in IP_CHECKS]
    if need_domain and not domain:
        notes.append(f"not run without the sender domain (give --domain): "
                     f"{', '.join(need_domain)}")
    elif "dkim" in e.checks and not selectors:
        notes.append("dkim not run without a selector (give --dkim-selector; it is the s= "
                     "tag of the DKIM-Signature header)")
    if need_ip and not ips:
        notes.append(f"not run without the sending IP (give --ip): {', '.join(need_ip)}")
    return notes


# -- output -----------------------------------------------------------------


def render_explanation(e: Explanation) -> str:
    out: list[str] = []
    if not e.recognised:
        out.append("Not recognised: no known receiver code or text in this bounce.")
        if e.codes:
            out.append(f"Status codes seen: {', '.join(e.codes)}")
        out.append("Run `deliverability-exporter check <domain> --ip <ip>` to check everything.")
        return "\n".join(out) + "\n"
    for m in e.matches:
        p = m.pattern
        code = f" ({', '.join(m.codes)})" if m.codes else ""
        out.append(f"{p.receiver}{code}: {p.meaning}")
        for cause in p.causes:
            out.append(f"  - likely cause: {cause}")
        out.append(f"  checks to run: {', '.join(p.checks)}")
        if p.link:
            out.append(f"  next: {p.link}")
        if p.source:
            out.append(f"  reference: {p.source}")
    out.append(f"Sending IP in the bounce: {e.ip or 'not found (give --ip)'}")
    out.append(f"Sender domain in the bounce: {e.domain or 'not found (give --domain)'}")
    if e.selector:
        out.append(f"DKIM selector in the bounce: {e.selector}")
    return "\n".join(out) + "\n"


def explanation_json(e: Explanation) -> dict[str, Any]:
    return {
        "recognised": e.recognised,
        "codes": list(e.codes),
        "ip": e.ip,
        "domain": e.domain,
        "selector": e.selector,
        "checks": list(e.checks),
        "matches": [
            {"id": m.pattern.id, "receiver": m.pattern.receiver, "meaning": m.pattern.meaning,
             "causes": list(m.pattern.causes), "checks": list(m.pattern.checks),
             "codes": list(m.codes), "link": m.pattern.link, "source": m.pattern.source}
            for m in e.matches
        ],
    }


def failing_checks(report: Report) -> list[str]:
    """Checks with a failed finding or a run that could not finish, in report order."""
    names: list[str] = []
    for g in report.groups:
        for i in g.items:
            if i.status in (FAIL, "error") and i.check not in names and i.check != "providers":
                names.append(i.check)
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deliverability-exporter explain",
        description="Explain a bounce (argument or stdin) and run the checks it points to. "
                    "Exit: the check report's 0/1/2 when checks ran; otherwise 0 when the "
                    "bounce was recognised, 1 when not.",
    )
    p.add_argument("bounce", nargs="?", help="the bounce text (default: read stdin)")
    p.add_argument("--domain", default="", help="sender domain (default: found in the bounce)")
    add_target_arguments(p)
    p.add_argument("--no-checks", action="store_true", help="only explain, run nothing")
    return p


async def explain_and_check(
    e: Explanation, domain: str, ips: Sequence[str], args: argparse.Namespace,
    resolver: Resolver | None = None,
) -> Report | None:
    """Run the checks the bounce points to for the domain/IPs; None when nothing can run."""
    runnable = [c for c in e.checks
                if (c in DOMAIN_CHECKS and domain) or (c in IP_CHECKS and ips)
                or (c not in DOMAIN_CHECKS and c not in IP_CHECKS)]
    if not runnable or not (domain or ips):
        return None
    raw = raw_config(domain or None, ips, args.helo, args.dkim_selectors, args.senders,
                     args.resolver, args.dnsbl_zones, not args.no_smtp)
    config = build_config(raw, "<explain>")
    store = await run_checks(config, resolver=resolver, only=runnable)
    return build_report(store, config)


def explain_main(argv: list[str], stdin: TextIO | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    text = args.bounce if args.bounce is not None else (stdin or sys.stdin).read()
    e = explain(text)
    domain = args.domain or e.domain
    ips = args.ip or ([e.ip] if e.ip else [])
    if not args.dkim_selectors and e.selector:
        args.dkim_selectors = [e.selector]
    report: Report | None = None
    notes = [] if args.no_checks else skipped(e, domain, ips, args.dkim_selectors)
    if not args.no_checks:
        try:
            report = asyncio.run(explain_and_check(e, domain, ips, args))
        except (ConfigError, ValueError) as exc:
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            print("explain: invalid input: " + "; ".join(problems), file=sys.stderr)
            return 2
    out = sys.stdout
    if args.format == "json":
        doc = explanation_json(e)
        doc["report"] = report_json(report) if report is not None else None
        doc["failing_checks"] = failing_checks(report) if report is not None else []
        doc["not_run"] = notes
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        out.write(render_explanation(e))
        for note in notes:
            out.write(f"Note: {note}\n")
        if report is not None:
            out.write("\n" + render_text(report, use_color(out, args.no_color)))
            failing = failing_checks(report)
            out.write(("Failing: " + ", ".join(failing)) if failing
                      else "None of the matching checks fails from here.")
            out.write("\n")
    out.flush()
    if report is not None:
        return report.exit_code
    return 0 if e.recognised else 1


__all__ = ["PATTERNS", "Explanation", "Pattern", "explain", "explain_main", "run_checks"]
