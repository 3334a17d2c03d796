"""The status page at ``/``: every domain and sending IP, a traffic light per check.

Plain server-rendered HTML: it works without JavaScript, refreshes itself
every 30 seconds, and says every status in words beside the colour (for
screen readers and colour-blind people). Everything shown comes from the
store (no lookups on a page view) and is HTML-escaped: evidence carries DNS
data, which anyone who controls a zone can fill with markup.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.blocklists import delist_url, effective_zones, known_list
from exporter.config import Config
from exporter.providers import ProviderVerdict, evaluate
from exporter.report import ERROR, FAIL, INFO, PASS, WARN, entry_items, worst
from exporter.store import Entry, Store

if TYPE_CHECKING:
    from aiohttp import web

REFRESH_SECONDS = 30
LISTING_INFO = "deliverability_dnsbl_listing_info"

#: Provider requirements whose inputs are missing: grey, and said so in words.
UNKNOWN = "unknown"

_LABEL = {PASS: "pass", INFO: "info", WARN: "warning", FAIL: "fail", ERROR: "could not check",
          UNKNOWN: "unknown"}

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1b1b;background:#fafafa;max-width:80rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #e2e2e2}
pre{white-space:pre-wrap;word-break:break-all;margin:.2rem 0;font-size:.85rem;background:#f0f0f0;
padding:.25rem .4rem}
.light{display:inline-block;width:.9rem;height:.9rem;border-radius:50%;margin-right:.35rem;
vertical-align:middle;border:1px solid #555}
.light-pass{background:#1a7f37}.light-info{background:#1a7f37}.light-warn{background:#d4a72c}
.light-fail{background:#cf222e}.light-error,.light-unknown{background:#6e7781}
summary{cursor:pointer;font-weight:600;margin:.5rem 0}
.status{font-weight:600;white-space:nowrap}
.finding{margin:.2rem 0 .6rem}.muted{color:#555;font-size:.85rem}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def light(status: str) -> str:
    """A coloured dot plus the status in words: colour is never the only signal."""
    label = _LABEL[status]
    return (f'<span class="status status-{_e(status)}">'
            f'<span class="light light-{_e(status)}" aria-hidden="true"></span>'
            f"{_e(label.upper())}</span>")


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    ago = max(0, int(now - ts))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
    return f"{stamp} ({ago}s ago)"


def _safe_link(url: str, text: str) -> str:
    if not url.startswith(("https://", "http://")):
        return _e(text)
    return f'<a href="{_e(url)}">{_e(text)}</a>'


def entry_status(entry: Entry) -> str:
    return worst(i.status for i in entry_items(entry))


def _findings_html(entry: Entry) -> str:
    parts: list[str] = []
    for item in entry_items(entry):
        bits = [f'<div class="finding">{light(item.status)} {_e(item.title)}']
        if item.evidence:
            bits.append(f'<div class="muted">evidence</div><pre>{_e(item.evidence)}</pre>')
        if item.fix:
            bits.append(f'<div class="muted">fix</div><pre>{_e(item.fix)}</pre>')
        bits.append("</div>")
        parts.append("".join(bits))
    return "".join(parts)


def _listings_html(entry: Entry) -> str:
    rows: list[str] = []
    for sample in sorted(entry.samples.values(), key=lambda s: s.labels):
        if sample.metric != LISTING_INFO or sample.value != 1:
            continue
        labels = dict(sample.labels)
        zone = labels.get("zone", "")
        known = known_list(zone)
        meaning = dict(known.codes).get(labels.get("code", ""), "") if known else ""
        url = delist_url(zone)
        link = _safe_link(url, f"delisting page for {zone}") if url else "ask the list operator"
        what = labels.get("ip") or labels.get("domain", "")
        code = _e(labels.get("code", "")) + (f" ({_e(meaning)})" if meaning else "")
        rows.append(
            f'<li class="listing">{_e(what)} listed on <strong>{_e(zone)}</strong>, '
            f"code {code}; reason: <q>{_e(labels.get('reason', ''))}</q>; removal: {link}</li>"
        )
    if not rows:
        return ""
    # A list, not a nested table: rows stay flat for screen readers and tests alike.
    return '<div class="muted">listings</div><ul class="listings">' + "".join(rows) + "</ul>"


def _checks_table(entries: Iterable[Entry], now: float) -> str:
    rows: list[str] = []
    for entry in sorted(entries, key=lambda e: e.check):
        status = entry_status(entry)
        stale = ""
        if not entry.success:
            stale = (f'<div class="muted">last successful run: '
                     f"{_e(_when(entry.last_success, now))}</div>")
        rows.append(
            f'<tr class="check check-{_e(entry.check)}" data-status="{_e(status)}">'
            f"<td>{light(status)}</td><td>{_e(entry.check)}</td>"
            f"<td>{_findings_html(entry)}{_listings_html(entry)}{stale}</td>"
            f'<td class="muted">{_e(_when(entry.timestamp, now))}</td></tr>'
        )
    return ("<table><tr><th>status</th><th>check</th><th>findings</th><th>last run</th></tr>"
            + "".join(rows) + "</table>")


def _providers_table(verdicts: list[ProviderVerdict]) -> str:
    if not verdicts:
        return ""
    rows: list[str] = []
    for v in verdicts:
        status = PASS if v.compliant is True else WARN if v.compliant is False else UNKNOWN
        word = {True: "compliant", False: "not compliant", None: "inputs missing"}[v.compliant]
        reqs = "".join(
            f"<li>{light(PASS if r.met else WARN if r.met is False else UNKNOWN)} "
            f"{_e(r.name)}{'' if r.required else ' (recommended)'}: {_e(r.detail)}</li>"
            for r in v.requirements
        )
        hidden = "; ".join(v.not_visible)
        rows.append(
            f'<tr class="provider" data-provider="{_e(v.provider)}" data-status="{_e(status)}">'
            f"<td>{light(status)} {_e(word)}</td><td>{_e(v.provider_name)}"
            + (f'<div class="muted">{_e(v.notes)}</div>' if v.notes else "")
            + f"</td><td><ul>{reqs}</ul><div class=\"muted\">cannot be seen from outside: "
            f"{_e(hidden)}</div></td></tr>"
        )
    met = sum(1 for v in verdicts if v.compliant is True)
    failed = sum(1 for v in verdicts if v.compliant is False)
    unknown = len(verdicts) - met - failed
    # <details> folds the long table without JavaScript; the summary keeps the verdict visible.
    opened = " open" if failed else ""
    return (f'<details class="providers"{opened}><summary>Provider requirements: {met} compliant, '
            f"{failed} not compliant, {unknown} unknown (of {len(verdicts)})</summary>"
            "<table><tr><th>verdict</th><th>provider</th><th>requirements</th></tr>"
            + "".join(rows) + "</table></details>")


def _overview(targets: list[tuple[str, str]], by_target: dict[str, list[Entry]]) -> str:
    """One row per domain/IP, one light per check: the whole picture at a glance."""
    checks = sorted({e.check for key, _ in targets for e in by_target.get(key, [])})
    if not checks:
        return ""
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in checks)
    rows: list[str] = []
    for key, anchor in targets:
        mine = {e.check: e for e in by_target.get(key, [])}
        cells = "".join(
            f"<td>{light(entry_status(mine[c]))}</td>" if c in mine else '<td class="muted">—</td>'
            for c in checks
        )
        rows.append(f'<tr><th scope="row"><a href="#{_e(anchor)}">{_e(key)}</a></th>{cells}</tr>')
    return (f'<table class="overview"><caption>Overview</caption><tr><th>target</th>{head}</tr>'
            + "".join(rows) + "</table>")


def render_status_page(store: Store, config: Config, now: float | None = None) -> str:
    now = time.time() if now is None else now
    entries = store.snapshot()
    by_target: dict[str, list[Entry]] = {}
    for entry in entries:
        by_target.setdefault(entry.target, []).append(entry)
    verdicts = evaluate(entries, config)
    shown: set[str] = set()
    sections: list[str] = []
    statuses = [entry_status(e) for e in entries]

    for domain in config.domains:
        shown.add(domain.name)
        mine = by_target.get(domain.name, [])
        status = worst(entry_status(e) for e in mine)
        sections.append(
            f'<section class="domain" id="domain-{_e(domain.name)}"><h2>{light(status)} '
            f"Domain {_e(domain.name)}</h2>"
            + (_checks_table(mine, now) if mine else "<p>No results yet.</p>")
            + _providers_table([v for v in verdicts if v.domain == domain.name])
            + "</section>"
        )
    for sender in config.senders:
        key = sender.ip or sender.host
        if key in shown:
            continue
        shown.add(key)
        mine = by_target.get(key, [])
        status = worst(entry_status(e) for e in mine)
        kind = "Sending IP" if sender.ip else "Sending host"
        sections.append(
            f'<section class="sender" id="sender-{_e(key)}"><h2>{light(status)} '
            f"{kind} {_e(key)}</h2>"
            + (_checks_table(mine, now) if mine else "<p>No results yet.</p>")
            + "</section>"
        )
    zones = {z.zone for z in effective_zones(config.dnsbl.zones, config.dnsbl.builtin)}
    zone_entries = [e for e in entries if e.target in zones and e.target not in shown]
    if zone_entries:
        sections.append('<section class="zones"><h2>Blocklist zones</h2>'
                        + _checks_table(zone_entries, now) + "</section>")
        shown.update(e.target for e in zone_entries)
    rest = [e for e in entries if e.target not in shown]
    if rest:
        sections.append('<section class="other"><h2>Other results</h2>'
                        + _checks_table(rest, now) + "</section>")

    targets = [(d.name, f"domain-{d.name}") for d in config.domains]
    targets += [(k, f"sender-{k}") for k in dict.fromkeys(s.ip or s.host for s in config.senders)
                if k not in {d.name for d in config.domains}]
    overview = _overview(targets, by_target)
    counts = {s: statuses.count(s) for s in (FAIL, ERROR, WARN)}
    overall = worst(statuses)
    summary = (f"{len(entries)} results: {counts[FAIL]} failing, {counts[ERROR]} could not be "
               f"checked, {counts[WARN]} with warnings.")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mail deliverability status</title><style>{_CSS}</style></head>
<body><header><h1>{light(overall)} Mail deliverability status</h1>
<p>{_e(summary)} <span class="muted">Updated {_e(_when(now, now))}; this page refreshes
every {REFRESH_SECONDS} seconds.</span></p>
<nav><a href="/metrics">/metrics</a> · <a href="/-/ready">/-/ready</a> ·
<a href="/-/healthy">/-/healthy</a></nav></header>
<main>{overview}{"".join(sections) or "<p>Nothing configured.</p>"}</main>
<footer class="muted"><p>deliverability-exporter {_e(__version__)}</p></footer>
</body></html>
"""


async def status_page(request: web.Request) -> web.Response:
    """aiohttp handler for ``/`` (mounted by exporter/web.py)."""
    from aiohttp import web

    # Imported here: exporter.web mounts this handler, so a top-level import would be circular.
    from exporter.web import EXPORTER_KEY

    exporter = request.app[EXPORTER_KEY]
    page = render_status_page(exporter.store, exporter.config)
    return web.Response(text=page, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store"})
