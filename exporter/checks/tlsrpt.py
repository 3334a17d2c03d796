"""TLS-RPT (RFC 8460): ``_smtp._tls.<domain>`` TXT ``v=TLSRPTv1; rua=...``.

Valid means exactly one record that starts with ``v=TLSRPTv1`` and whose
``rua`` lists one or more ``mailto:`` or ``https:`` URIs, each well formed.
No record (NXDOMAIN/NODATA) is an answer: valid 0.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from typing import ClassVar

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.checks.common import single_record
from exporter.config import Config

_RECORD_START = re.compile(r"^v=TLSRPTv1\s*(;|$)")
_MAILBOX = re.compile(r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def rua_problems(uri: str) -> str:
    """"" when ``uri`` is a usable report destination, else why not."""
    if uri.lower().startswith("mailto:"):
        # Any "!size" suffix or ?query is tolerated; the mailbox must look like one.
        mailbox = urllib.parse.unquote(uri[7:]).split("?", 1)[0]
        return "" if _MAILBOX.match(mailbox) else f"{uri!r} is not a mail address"
    if uri.lower().startswith("https://"):
        parsed = urllib.parse.urlsplit(uri)
        return "" if parsed.hostname else f"{uri!r} has no host"
    return f"{uri!r} is neither mailto: nor https:"


def parse_record(text: str) -> list[str]:
    """The rua URIs of a TLS-RPT record; ValueError says what is wrong."""
    if not _RECORD_START.match(text):
        raise ValueError("the record must start with v=TLSRPTv1")
    fields: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"malformed field {part!r}")
        if key.strip() in fields:
            raise ValueError(f"duplicate field {key.strip()!r}")
        fields[key.strip()] = value.strip()
    if fields.get("v") != "TLSRPTv1":
        raise ValueError("the record must start with v=TLSRPTv1")
    if not fields.get("rua"):
        raise ValueError("no rua field")
    uris = [u.strip() for u in fields["rua"].split(",") if u.strip()]
    for uri in uris:
        problem = rua_problems(uri)
        if problem:
            raise ValueError(problem)
    if not uris:
        raise ValueError("rua lists no destination")
    return uris


class TlsRptCheck:
    name: ClassVar[str] = "tlsrpt"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec("deliverability_tlsrpt_valid",
                   "1 when exactly one valid v=TLSRPTv1 record with mailto:/https: rua exists.",
                   ("domain",)),
    )

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, d.name) for d in config.domains]

    def interval(self, config: Config) -> float:
        return config.tlsrpt.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        f = Findings()
        domain = target.key
        qname = f"_smtp._tls.{domain}"
        fix = f"Publish {qname}. IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}\"."
        text = await single_record(ctx.resolver, qname, _RECORD_START, f, domain=domain,
                                   what="TLS-RPT", fix=fix)
        if text is None:
            f.add("deliverability_tlsrpt_valid", 0, domain=domain)
            return f
        try:
            uris = parse_record(text)
        except ValueError as exc:
            f.add("deliverability_tlsrpt_valid", 0, domain=domain)
            f.note(Status.FAIL, f"{domain} TLS-RPT record is invalid",
                   evidence=f"{text} ({exc})", fix=fix)
            return f
        f.add("deliverability_tlsrpt_valid", 1, domain=domain)
        f.note(Status.PASS, f"{domain} TLS-RPT reports go to {', '.join(uris)}",
               evidence=text)
        return f
