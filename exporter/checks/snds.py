"""Microsoft SNDS: what Outlook.com says about the sending IPs.

SNDS "automated data access" (Smart Network Data Services → View Data →
Automated Access, https://sendersupport.olc.protection.outlook.com/snds/)
gives a key for two CSV feeds without a header row:

- ``data.aspx?key=KEY[&date=MMDDYY]`` — one row per IP and activity period of
  the most recent day (or of the given day), columns in this order: IP
  address, activity start, activity end, RCPT commands, DATA commands,
  message recipients, filter result (GREEN / YELLOW / RED), complaint rate
  (``"< 0.1%"`` or ``"1.2%"``), trap message period start, trap message period
  end, trap hits, sample HELO, sample MAIL FROM (JMR P1 sender), comments.
  Times are ``M/D/YYYY h:mm AM`` in Pacific Standard Time, the time zone SNDS
  divides days by.
- ``ipStatus.aspx?key=KEY`` — one row per blocked range: first IP, last IP,
  ``Yes``, and the reason.

(Column meanings as in the SNDS web UI and FAQ; the column order is the one
the sndslib client parses from the live feeds, github.com/undersfx/sndslib.
Fixtures: tests/fixtures/snds.)

The key is a secret: it is read from ``snds.key_file`` on every run and never
appears in an error, a finding or a log line.
"""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, ClassVar

import aiohttp

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.config import is_ip
from exporter.http_client import HttpError, open_session, request

if TYPE_CHECKING:
    from exporter.config import Config

#: SNDS splits days by Pacific Standard Time (UTC-8, no daylight saving).
PST = timezone(timedelta(hours=-8), "PST")
#: Days to look back when the most recent day has no rows yet.
LOOKBACK_DAYS = 3
FILTER_RESULTS = {"GREEN": 0, "YELLOW": 1, "RED": 2}
_RATE_RE = re.compile(r"^\s*(<)?\s*(\d+(?:\.\d+)?)\s*%\s*$")
_DELIST_FIX = (
    "Find and stop the cause (compromised account, bad list, open relay), then ask "
    "for mitigation at https://sender.office.com/ and via the Outlook.com sender "
    "support form (https://olcsupport.office.com/)."
)


class SndsError(Exception):
    """A feed could not be fetched or read; the message never holds the key."""


@dataclass(slots=True)
class IpData:
    """The data feed's rows for one IP, summed over its activity periods."""

    ip: str
    rcpt_commands: int = 0
    data_commands: int = 0
    recipients: int = 0
    filter_result: int | None = None
    complaint_rate: float | None = None
    complaint_is_bound: bool = False
    trap_hits: int = 0
    activity_end: float | None = None
    evidence: list[str] = field(default_factory=list)


def parse_rate(text: str) -> tuple[float | None, bool]:
    """``"< 0.1%"`` → (0.001, True): SNDS gives an upper bound below 0.1 %."""
    if not text.strip():
        return None, False
    m = _RATE_RE.match(text)
    if m is None:
        raise SndsError(f"complaint rate {text[:20]!r} is not a percentage")
    return float(m.group(2)) / 100.0, m.group(1) is not None


def parse_time(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, "%m/%d/%Y %I:%M %p").replace(tzinfo=PST).timestamp()
    except ValueError as exc:
        raise SndsError(f"time {text[:30]!r} is not M/D/YYYY h:mm AM") from exc


def _count(text: str, column: str) -> int:
    text = text.strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError as exc:
        raise SndsError(f"{column} {text[:20]!r} is not a number") from exc


def _rows(text: str) -> list[list[str]]:
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if rows and rows[0] and not is_ip(rows[0][0].strip()):
        rows = rows[1:]  # a header row, should SNDS ever add one
    return rows


def _looks_like_html(text: str) -> bool:
    return text.lstrip()[:1] == "<"


def parse_data_csv(text: str) -> dict[str, IpData]:
    """The data feed → per-IP data. A row that is not the documented shape is SndsError."""
    if _looks_like_html(text):
        raise SndsError("SNDS data feed answered with a web page, not CSV (is the key valid?)")
    result: dict[str, IpData] = {}
    for n, row in enumerate(_rows(text), 1):
        if len(row) < 11:
            raise SndsError(f"SNDS data feed row {n} has {len(row)} columns, expected at least 11")
        try:
            ip = str(ipaddress.ip_address(row[0].strip()))
        except ValueError as exc:
            raise SndsError(
                f"SNDS data feed row {n}: {row[0][:40]!r} is not an IP address") from exc
        d = result.setdefault(ip, IpData(ip))
        d.rcpt_commands += _count(row[3], "RCPT commands")
        d.data_commands += _count(row[4], "DATA commands")
        d.recipients += _count(row[5], "message recipients")
        colour = row[6].strip().upper()
        if colour not in FILTER_RESULTS:
            raise SndsError(
                f"SNDS data feed row {n}: filter result {row[6][:20]!r} is not GREEN/YELLOW/RED")
        # Several periods in a day: the worst one is the day's verdict.
        d.filter_result = max(FILTER_RESULTS[colour], d.filter_result or 0)
        rate, bound = parse_rate(row[7])
        if rate is not None and (d.complaint_rate is None or rate > d.complaint_rate):
            d.complaint_rate, d.complaint_is_bound = rate, bound
        d.trap_hits += _count(row[10], "trap hits")
        end = parse_time(row[2])
        if end is not None:
            d.activity_end = max(end, d.activity_end or end)
        d.evidence.append(",".join(c.strip() for c in row[:11]))
    return result


@dataclass(frozen=True, slots=True)
class BlockedRange:
    first: ipaddress.IPv4Address | ipaddress.IPv6Address
    last: ipaddress.IPv4Address | ipaddress.IPv6Address
    reason: str

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return ip.version == self.first.version and self.first <= ip <= self.last  # type: ignore[operator]


def parse_ip_status_csv(text: str) -> list[BlockedRange]:
    """The IP-status feed → the blocked ranges (rows whose third column is Yes)."""
    if _looks_like_html(text):
        raise SndsError("SNDS IP status feed answered with a web page, not CSV (is the key valid?)")
    ranges: list[BlockedRange] = []
    for n, row in enumerate(_rows(text), 1):
        if len(row) < 3:
            raise SndsError(f"SNDS IP status feed row {n} has {len(row)} columns, expected 4")
        try:
            first = ipaddress.ip_address(row[0].strip())
            last = ipaddress.ip_address(row[1].strip())
        except ValueError as exc:
            raise SndsError(f"SNDS IP status feed row {n} is not an address range") from exc
        if row[2].strip().lower() == "yes":
            reason = row[3].strip() if len(row) > 3 else ""
            ranges.append(BlockedRange(first, last, reason[:200]))
    return ranges


class SndsCheck:
    name: ClassVar[str] = "snds"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec("deliverability_snds_filter_result",
                   "Outlook.com spam-filter verdict for the IP on the newest SNDS day: "
                   "0 green (<10 % junked), 1 yellow, 2 red (>90 % junked).", ("ip",)),
        MetricSpec("deliverability_snds_complaint_rate_ratio",
                   "Share of recipients who reported the IP's mail as junk, 0-1; SNDS's "
                   "'< 0.1%' is exported as its bound 0.001.", ("ip",)),
        MetricSpec("deliverability_snds_trap_hits",
                   "Messages from the IP that reached Outlook.com spam traps on the newest "
                   "SNDS day.", ("ip",)),
        MetricSpec("deliverability_snds_blocked",
                   "1 if SNDS lists the IP in a blocked range, 0 if the feeds know the IP "
                   "and it is not blocked.", ("ip",)),
        MetricSpec("deliverability_snds_messages",
                   "Message recipients (messages delivered) from the IP on the newest SNDS day.",
                   ("ip",)),
        MetricSpec("deliverability_snds_rcpt_commands",
                   "RCPT TO commands the IP sent to Outlook.com on the newest SNDS day.", ("ip",)),
        MetricSpec("deliverability_snds_data_commands",
                   "DATA commands the IP sent to Outlook.com on the newest SNDS day.", ("ip",)),
        MetricSpec("deliverability_snds_activity_end_timestamp_seconds",
                   "End of the IP's last activity period in the SNDS data (the data's age).",
                   ("ip",)),
    )

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def targets(self, config: Config) -> list[Target]:
        if not config.snds.key_file:
            return []
        ips = tuple(s.ip for s in config.senders if s.ip)
        hosts = tuple(s.host for s in config.senders if s.host)
        return [Target(self.name, "snds", (("ips", ips), ("hosts", hosts)))]

    def interval(self, config: Config) -> float:
        return max(config.snds.interval, 3600.0)

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        f = Findings()
        ips = await self._sender_ips(target, ctx, f)
        cfg = ctx.config.snds
        try:
            key = await asyncio.to_thread(_read_key, cfg.key_file)
        except SndsError as exc:
            f.error(str(exc))
            return f
        async with open_session(ctx.resolver, ctx.config.tls.ca_file) as session:
            try:
                data = await self._data(session, cfg.base_url, key)
                blocked = parse_ip_status_csv(
                    await _fetch(session, f"{cfg.base_url}/ipStatus.aspx", {"key": key},
                                 "SNDS IP status feed"))
            except (SndsError, HttpError) as exc:
                message = _redact(str(exc), key)
                ctx.log.warning("snds: %s", message)
                f.error(message)
                return f
        _record(f, ips, data, blocked)
        return f

    async def _sender_ips(self, target: Target, ctx: CheckContext, f: Findings) -> list[str]:
        ips = list(_strs(target.param("ips", ())))
        for host in _strs(target.param("hosts", ())):
            # SNDS covers IPv4 only: A records are what Outlook.com sees.
            answer = (await ctx.resolver.resolve(host, "A")).require()
            if not answer.records:
                f.note(Status.INFO, f"Sender host {host} has no IPv4 address for SNDS",
                       evidence=f"A {host}: {answer.outcome.value}")
            ips.extend(answer.records)
        v4 = [ip for ip in dict.fromkeys(ips) if ipaddress.ip_address(ip).version == 4]
        skipped = [ip for ip in ips if ipaddress.ip_address(ip).version != 4]
        if skipped:
            f.note(Status.INFO, "SNDS has no data for IPv6 senders",
                   evidence=", ".join(dict.fromkeys(skipped)))
        return v4

    async def _data(
        self, session: aiohttp.ClientSession, base_url: str, key: str
    ) -> dict[str, IpData]:
        """The most recent day with rows: today's feed may be empty until SNDS catches up."""
        url = f"{base_url}/data.aspx"
        data = parse_data_csv(await _fetch(session, url, {"key": key}, "SNDS data feed"))
        today = datetime.fromtimestamp(self._clock(), PST).date()
        for back in range(1, LOOKBACK_DAYS + 1):
            if data:
                break
            day = today - timedelta(days=back)
            params = {"key": key, "date": day.strftime("%m%d%y")}
            data = parse_data_csv(await _fetch(session, url, params, f"SNDS data feed for {day}"))
        return data


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, tuple | list) else ()


def _read_key(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            key = fh.read().strip()
    except OSError as exc:
        raise SndsError(f"cannot read snds.key_file {path}: {exc.strerror or exc}") from exc
    if not key:
        raise SndsError(f"snds.key_file {path} is empty")
    return key


async def _fetch(
    session: aiohttp.ClientSession, url: str, params: dict[str, str], what: str
) -> str:
    resp = await request(session, "GET", url, params=params, what=what)
    if resp.status != 200:
        hint = " (is the SNDS key valid?)" if resp.status in (401, 403) else ""
        raise SndsError(f"{what}: HTTP {resp.status}{hint}")
    return resp.text()


def _redact(text: str, secret: str) -> str:
    # Belt and braces: no code path puts the key in a message, but never let one through.
    return text.replace(secret, "<key>") if secret else text


def _record(
    f: Findings, ips: list[str], data: dict[str, IpData], blocked: list[BlockedRange]
) -> None:
    if not ips:
        f.note(Status.INFO, "No IPv4 senders configured for SNDS",
               fix="List the sending IPs under senders: in the config.")
    for ip in ips:
        addr = ipaddress.ip_address(ip)
        block = next((r for r in blocked if addr in r), None)
        d = data.get(ip)
        if d is None and block is None:
            f.note(Status.INFO, f"SNDS has no data for {ip}",
                   evidence="not in the data or IP status feed of the newest day",
                   fix="SNDS reports an IP only on days it sent 100+ messages to Outlook.com, "
                       "and only if the IP is registered under this key "
                       "(SNDS → Request Access). Register it if it is yours.")
            continue
        f.add("deliverability_snds_blocked", block is not None, ip=ip)
        if block is not None:
            f.note(Status.FAIL, f"Outlook.com blocks {ip}",
                   evidence=f"{block.first}-{block.last}: {block.reason}", fix=_DELIST_FIX)
        if d is None:
            continue
        _record_ip(f, d)


def _record_ip(f: Findings, d: IpData) -> None:
    ip = d.ip
    evidence = "; ".join(d.evidence)
    f.add("deliverability_snds_messages", d.recipients, ip=ip)
    f.add("deliverability_snds_rcpt_commands", d.rcpt_commands, ip=ip)
    f.add("deliverability_snds_data_commands", d.data_commands, ip=ip)
    f.add("deliverability_snds_trap_hits", d.trap_hits, ip=ip)
    if d.activity_end is not None:
        f.add("deliverability_snds_activity_end_timestamp_seconds", d.activity_end, ip=ip)
    if d.complaint_rate is not None:
        f.add("deliverability_snds_complaint_rate_ratio", d.complaint_rate, ip=ip)
    if d.filter_result is not None:
        f.add("deliverability_snds_filter_result", d.filter_result, ip=ip)
        if d.filter_result == 2:
            f.note(Status.FAIL, f"SNDS rates {ip} red: most of its mail goes to junk", evidence,
                   "Stop bulk sending from this IP, find the mail users marked as junk "
                   "(join JMRP for the complaints), clean the list, then resume slowly.")
        elif d.filter_result == 1:
            f.note(Status.WARN, f"SNDS rates {ip} yellow: some of its mail goes to junk", evidence,
                   "Check complaints (JMRP) and trap hits; send only to engaged recipients.")
        else:
            f.note(Status.PASS, f"SNDS rates {ip} green", evidence)
    if d.trap_hits > 0:
        f.note(Status.WARN, f"{ip} sent {d.trap_hits} messages to Outlook.com spam traps", evidence,
               "Trap addresses never sign up: remove addresses that bounced or never engaged, "
               "and use confirmed opt-in.")
