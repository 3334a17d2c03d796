"""``deliverability-exporter check``: run every check once and print a report for people.

The report is grouped the way a support engineer works through a delivery
problem: blocklists first (nothing else matters while listed), then reverse
DNS and HELO, SPF, DKIM, DMARC, MX, transport security, and finally what the
big receivers demand. A run that could not finish (a DNS timeout, a crash) is
shown as "could not check", never as a pass, and makes the exit code 2.

The same machinery (:func:`run_checks`, :func:`build_report`) serves
``explain`` (exporter/bounce.py), so both speak with one voice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from exporter.app import build_context, build_resolver
from exporter.checks.base import Check, CheckContext, Status, Target
from exporter.config import Config, ConfigError, build_config, is_ip, load_config
from exporter.dns import QueryStats, Resolver
from exporter.providers import ProviderVerdict, evaluate
from exporter.registry import all_checks
from exporter.scheduler import run_once
from exporter.store import Entry, Store

#: Report groups in working order: (title, check names). Unknown checks go to "Other".
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Blocklists", ("dnsbl",)),
    ("PTR and HELO", ("ptr",)),
    ("SPF", ("spf",)),
    ("DKIM", ("dkim",)),
    ("DMARC", ("dmarc",)),
    ("MX", ("mx",)),
    ("TLS (SMTP, MTA-STS, TLS-RPT, DANE, DNSSEC, BIMI)",
     ("smtp", "mta_sts", "tlsrpt", "dane", "dnssec", "bimi")),
    ("Receiver data", ("postmaster", "snds")),
)
OTHER_GROUP = "Other"
PROVIDER_GROUP = "Provider requirements"

#: A report item's status: a finding's, or ERROR for a run that could not finish.
PASS, INFO, WARN, FAIL, ERROR = "pass", "info", "warn", "fail", "error"
_RANK = {PASS: 0, INFO: 0, WARN: 1, FAIL: 2, ERROR: 2}

SCHEMA_VERSION = 1

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class Item:
    check: str
    target: str
    status: str
    title: str
    evidence: str = ""
    fix: str = ""


@dataclass(slots=True)
class Group:
    name: str
    items: list[Item] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst(i.status for i in self.items)


@dataclass(slots=True)
class Report:
    domains: tuple[str, ...]
    senders: tuple[str, ...]
    groups: list[Group]
    entries: list[Entry]
    providers: list[ProviderVerdict]

    @property
    def status(self) -> str:
        return worst(g.status for g in self.groups)

    @property
    def exit_code(self) -> int:
        """0 all passed, 1 warnings, 2 failures or a check that could not run."""
        return _RANK[self.status]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in (PASS, INFO, WARN, FAIL, ERROR)}
        for g in self.groups:
            for i in g.items:
                out[i.status] += 1
        return out


def worst(statuses: Iterable[str]) -> str:
    """The most serious status; ERROR outranks FAIL, and only-INFO stays INFO (not a pass)."""
    seen = set(statuses)
    for status in (ERROR, FAIL, WARN, PASS, INFO):
        if status in seen:
            return status
    return PASS


# -- running ----------------------------------------------------------------


async def run_checks(
    config: Config,
    *,
    checks: Sequence[Check] | None = None,
    resolver: Resolver | None = None,
    only: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> Store:
    """Run every (check, target) of ``config`` once, concurrently; results in a fresh Store.

    ``resolver`` replaces the configured DNS (unit tests pass a FakeResolver);
    ``only`` limits the run to the named checks (``explain`` uses it).
    """
    checks = list(checks) if checks is not None else all_checks()
    if only is not None:
        wanted = set(only)
        checks = [c for c in checks if c.name in wanted]
    ctx: CheckContext
    if resolver is None:
        ctx = build_context(config, build_resolver(config, QueryStats()))
    else:
        ctx = CheckContext(resolver=resolver, config=config,
                           log=logging.getLogger("exporter.check"))
    pairs = [(c, t) for c in checks for t in c.targets(config)]
    store = Store()
    total = len(pairs)
    done = 0
    if progress is not None:
        progress(0, total, "starting")

    async def one(check: Check, target: Target) -> None:
        nonlocal done
        result = await run_once(check, target, ctx, config.scheduler.run_timeout)
        store.update(result)
        done += 1
        if progress is not None:
            progress(done, total, f"{check.name} {target.key}")

    await asyncio.gather(*(one(c, t) for c, t in pairs))
    return store


# -- building the report ----------------------------------------------------


def _group_of(check: str) -> str:
    for title, names in GROUPS:
        if check in names:
            return title
    return OTHER_GROUP


def entry_items(entry: Entry) -> list[Item]:
    """What a person reads about one (check, target): its findings, or why it could not run."""
    items: list[Item] = []
    if not entry.success:
        items.append(Item(
            entry.check, entry.target, ERROR,
            f"could not check {entry.check} for {entry.target}: {'; '.join(entry.errors)}",
            evidence="; ".join(entry.errors),
            fix="Retry; if it persists, check the resolver (--resolver) and the network path. "
                "This is not a pass.",
        ))
    for f in entry.findings:
        items.append(Item(entry.check, entry.target, Status(f.status).value, f.title,
                          f.evidence, f.fix))
    if entry.success and not entry.findings:
        items.append(Item(entry.check, entry.target, INFO,
                          f"{entry.check} checked {entry.target}: nothing to report"))
    return items


def provider_item(v: ProviderVerdict) -> Item:
    """Provider verdicts warn rather than fail: the failing checks themselves already fail,
    and the rules apply only to senders above the receiver's volume threshold."""
    missing = [r for r in v.requirements if r.met is False]
    unknown = [r for r in v.requirements if r.met is None]
    lines: list[str] = []
    for required, word in ((True, "required"), (False, "recommended")):
        names = [r.name for r in missing if r.required is required]
        if names:
            lines.append(f"not met ({word}): {', '.join(names)}")
    if unknown:
        # The per-IP/per-selector detail is in the checks' own findings above; say only why.
        reasons = "; ".join(dict.fromkeys(r.detail for r in unknown))
        lines.append(f"unknown: {', '.join(r.name for r in unknown)} ({reasons})")
    lines.append("cannot be seen from outside: " + "; ".join(v.not_visible))
    if v.compliant is True:
        status, verdict = PASS, "meets every requirement visible from outside"
    elif v.compliant is False:
        status, verdict = WARN, "does not meet the requirements"
    else:
        status, verdict = INFO, "compliance unknown (inputs missing)"
    fix = ""
    if missing:
        fix = ("Meet " + ", ".join(r.name for r in missing)
               + ": the failing checks above say how.")
    if v.notes:
        fix = (fix + " " + v.notes).strip()
    return Item("providers", v.domain, status, f"{v.provider_name}: {v.domain} {verdict}",
                "\n".join(lines), fix)


def build_report(store: Store, config: Config) -> Report:
    entries = store.snapshot()
    by_group: dict[str, Group] = {t: Group(t) for t, _ in GROUPS}
    for entry in sorted(entries, key=lambda e: (e.check, e.target)):
        title = _group_of(entry.check)
        by_group.setdefault(title, Group(title)).items.extend(entry_items(entry))
    groups = [g for g in by_group.values() if g.items]
    providers = evaluate(entries, config)
    if providers:
        groups.append(Group(PROVIDER_GROUP, [provider_item(v) for v in providers]))
    return Report(
        domains=tuple(d.name for d in config.domains),
        senders=tuple(s.ip or s.host for s in config.senders),
        groups=groups, entries=entries, providers=providers,
    )


# -- rendering --------------------------------------------------------------

_COLOURS = {PASS: "32", INFO: "36", WARN: "33", FAIL: "31", ERROR: "1;31"}
_LABELS = {PASS: "PASS", INFO: "INFO", WARN: "WARN", FAIL: "FAIL", ERROR: "ERROR"}


def _paint(text: str, status: str, color: bool) -> str:
    return f"\x1b[{_COLOURS[status]}m{text}\x1b[0m" if color else text


def _indent(label: str, text: str) -> list[str]:
    pad = " " * 8
    lines = text.splitlines() or [""]
    out = [f"{pad}{label:<10}{lines[0]}"]
    out.extend(f"{pad}{'':<10}{line}" for line in lines[1:])
    return out


def render_text(report: Report, color: bool = False) -> str:
    out: list[str] = []
    what = ", ".join([*report.domains, *report.senders]) or "nothing configured"
    out.append(f"deliverability check: {what}")
    for group in report.groups:
        out.append("")
        head = f"== {group.name} "
        out.append(head + "=" * max(3, 72 - len(head)) + " "
                   + _paint(_LABELS[group.status], group.status, color))
        for item in group.items:
            label = _paint(f"{_LABELS[item.status]:<6}", item.status, color)
            out.append(f"  {label}{item.title}  [{item.check} {item.target}]")
            if item.evidence:
                out.extend(_indent("evidence:", item.evidence))
            if item.fix:
                out.extend(_indent("fix:", item.fix))
    c = report.counts()
    out.append("")
    summary = (f"{c[FAIL]} failed, {c[ERROR]} could not be checked, {c[WARN]} warning(s), "
               f"{c[PASS]} passed, {c[INFO]} info")
    out.append(_paint(f"Result: {_LABELS[report.status]}", report.status, color)
               + f" ({summary}); exit {report.exit_code}")
    return "\n".join(out) + "\n"


def report_json(report: Report) -> dict[str, Any]:
    """The stable machine schema (documented in docs/fragments/people.md)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "status": report.status,
        "exit_code": report.exit_code,
        "domains": list(report.domains),
        "senders": list(report.senders),
        "counts": report.counts(),
        "groups": [
            {"name": g.name, "status": g.status,
             "items": [{"check": i.check, "target": i.target, "status": i.status,
                        "title": i.title, "evidence": i.evidence, "fix": i.fix}
                       for i in g.items]}
            for g in report.groups
        ],
        "runs": [
            {"check": e.check, "target": e.target, "success": e.success,
             "duration_seconds": round(e.duration, 6), "errors": list(e.errors)}
            for e in sorted(report.entries, key=lambda e: (e.check, e.target))
        ],
        "providers": [
            {"domain": v.domain, "provider": v.provider, "name": v.provider_name,
             "compliant": v.compliant,
             "requirements": [{"name": r.name, "description": r.description,
                               "required": r.required, "met": r.met, "detail": r.detail}
                              for r in v.requirements],
             "not_visible": list(v.not_visible), "notes": v.notes}
            for v in report.providers
        ],
    }


def render_json(report: Report) -> str:
    return json.dumps(report_json(report), indent=2, sort_keys=False) + "\n"


def use_color(stream: TextIO, no_color_flag: bool, env: dict[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR (https://no-color.org) is set."""
    environ = os.environ if env is None else env
    if no_color_flag or environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def stderr_progress(stream: TextIO) -> Progress | None:
    """A one-line progress display, only when stderr is a terminal (never in logs or pipes)."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        return None

    def show(done: int, total: int, label: str) -> None:
        end = "\n" if done == total and total else ""
        stream.write(f"\r\x1b[K[{done}/{total}] {label[:60]}{end}")
        stream.flush()

    return show


# -- command line -----------------------------------------------------------


def parse_resolver(text: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` → (ip, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    if not is_ip(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected IP, IP:PORT or [IPv6]:PORT, got {text!r}")
    return host, int(port)


def add_target_arguments(p: argparse.ArgumentParser) -> None:
    """Flags ``check`` and ``explain`` share."""
    p.add_argument("--ip", action="append", default=[], metavar="IP",
                   help="sending IP (blocklists, PTR/HELO, and SPF must authorise it)")
    p.add_argument("--helo", default="", help="the HELO/EHLO name the sending IPs use")
    p.add_argument("--dkim-selector", dest="dkim_selectors", action="append", default=[],
                   metavar="S", help="DKIM selector to check (repeatable)")
    p.add_argument("--sender", dest="senders", action="append", default=[],
                   metavar="IP_OR_HOST", help="extra IP or host SPF must authorise")
    p.add_argument("--resolver", default="", metavar="IP[:PORT]",
                   help="recursive resolver to ask (default: /etc/resolv.conf)")
    p.add_argument("--dnsbl-zone", dest="dnsbl_zones", action="append", default=[],
                   metavar="ZONE", help="blocklist zone to query instead of the built-in set")
    p.add_argument("--no-smtp", action="store_true",
                   help="do not connect to the domain's MX hosts (SMTP STARTTLS, DANE)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--no-color", action="store_true", help="never colour the output")


def raw_config(
    domain: str | None, ips: Sequence[str], helo: str, selectors: Sequence[str],
    senders: Sequence[str], resolver: str, dnsbl_zones: Sequence[str], smtp: bool = True,
) -> dict[str, Any]:
    """The YAML-shaped dict for build_config, so flags get exactly the config file's checks."""
    raw: dict[str, Any] = {}
    sender_list: list[dict[str, str]] = []
    for ip in ips:
        sender_list.append({"ip": ip, **({"helo": helo} if helo else {})})
    if sender_list:
        raw["senders"] = sender_list
    if domain:
        d: dict[str, Any] = {"name": domain}
        if selectors:
            d["dkim_selectors"] = list(selectors)
        spf_senders = list(dict.fromkeys([*ips, *senders]))
        if spf_senders:
            d["senders"] = spf_senders
        if not smtp:
            d["smtp"] = False
        raw["domains"] = [d]
    if resolver:
        host, port = parse_resolver(resolver)
        raw["resolver"] = {"nameservers": [host], "port": port}
    if dnsbl_zones:
        raw["dnsbl"] = {"zones": list(dnsbl_zones)}
    return raw


def config_from_args(args: argparse.Namespace) -> Config:
    if getattr(args, "config_file", None):
        return load_config(args.config_file)
    try:
        raw = raw_config(args.domain, args.ip, args.helo, args.dkim_selectors, args.senders,
                         args.resolver, args.dnsbl_zones, not args.no_smtp)
    except ValueError as exc:
        raise ConfigError([f"--resolver: {exc}"]) from exc
    return build_config(raw, "<command line>")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deliverability-exporter check",
        description="Run every check once and print a report. Exit 0: all passed, "
                    "1: warnings, 2: failures or checks that could not run.",
    )
    p.add_argument("domain", nargs="?", help="the mail domain to check")
    p.add_argument("--config.file", dest="config_file", default="",
                   help="check everything in this config file instead")
    add_target_arguments(p)
    return p


def emit(report: Report, fmt: str, no_color: bool, out: TextIO) -> None:
    if fmt == "json":
        out.write(render_json(report))
    else:
        out.write(render_text(report, use_color(out, no_color)))
    out.flush()


def check_main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    if not args.config_file and not args.domain and not args.ip:
        parser.print_usage(sys.stderr)
        print("check: give a domain, --ip, or --config.file", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print("check: invalid input:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    store = asyncio.run(run_checks(config, progress=stderr_progress(sys.stderr)))
    report = build_report(store, config)
    emit(report, args.format, args.no_color, sys.stdout)
    return report.exit_code
