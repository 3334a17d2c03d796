"""The status page in a real browser: headless Chromium against the running exporter.

Knot serves the zones, rbldnsd a blocklist under the built-in zone name
zen.spamhaus.org (stub-zoned by unbound: nothing leaves loopback), and the
exporter runs as a user runs it. The page carries no script at all (so it
works without JavaScript; Chromium's scriptEnabled=false switch also breaks
--dump-dom and --screenshot, so it is not used), Chromium renders ``/``, the
DOM is asserted, and a screenshot is kept in tests/artifacts/status-page.png
for people to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import ExporterFactory, StackFactory
from tests.integration.stack import Blocklist, DnsStack, Zone

ARTIFACT = Path(__file__).resolve().parents[1] / "artifacts" / "status-page.png"

ZONES = [
    Zone("good.test", """\
@      TXT  "v=spf1 ip4:192.0.2.10 -all"
_dmarc TXT  "v=DMARC1; p=none"
mail   A    192.0.2.10
"""),
    # 192.0.2.99 has no PTR at all: the broken reverse DNS the page must show red.
    Zone("2.0.192.in-addr.arpa", "10 PTR mail.good.test.\n"),
]
BLOCKLISTS = [
    Blocklist("zen.spamhaus.org",
              [("ip4set", ":127.0.0.4:Listed in XBL <b>exploited</b>\n192.0.2.99\n127.0.0.2\n")]),
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (Debian package chromium)")


def browser_argv(binary: str, profile: Path) -> list[str]:
    # Everything that would make the browser talk to the Internet is off.
    return [binary, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-default-apps", "--disable-extensions",
            f"--user-data-dir={profile}"]


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory) -> DnsStack:
    return make_stack(zones=ZONES, blocklists=BLOCKLISTS)


def config_text(stack: DnsStack) -> str:
    return f"""
resolver:
  nameservers: [{stack.resolver_host}]
  port: {stack.resolver_port}
dnsbl:
  zones: [zen.spamhaus.org]
senders:
  - ip: 192.0.2.10
    helo: mail.good.test
  - ip: 192.0.2.99
domains:
  - name: good.test
    senders: [192.0.2.10]
    smtp: false
"""


def section(dom: str, ident: str) -> str:
    m = re.search(rf'<section class="[a-z]+" id="{re.escape(ident)}">(.*?)</section>', dom, re.S)
    assert m, f"no section {ident} in the page"
    return m.group(1)


def check_row(sec: str, check: str) -> tuple[str, str]:
    m = re.search(rf'<tr class="check check-{check}" data-status="([a-z]+)">(.*?)</tr>', sec, re.S)
    assert m, f"no {check} row"
    return m.group(1), m.group(2)


def test_status_page_in_headless_chromium(
    stack: DnsStack, exporter: ExporterFactory, tmp_path: Path
) -> None:
    binary = chromium()
    proc = exporter(config_text(stack))
    url = proc.url + "/"
    status, _headers, body = proc.get("/")
    assert status == 200
    assert "<section" in body, "GET / is not the status page (is status_page mounted at /?)"
    assert "<script" not in body.lower()

    dom = subprocess.run(
        [*browser_argv(binary, tmp_path / "profile-dom"), "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=True,
    ).stdout
    assert '<meta http-equiv="refresh" content="30">' in dom
    assert 'href="/metrics"' in dom

    listed = section(dom, "sender-192.0.2.99")
    dnsbl_status, dnsbl_row = check_row(listed, "dnsbl")
    assert dnsbl_status == "fail"
    assert "192.0.2.99 is listed on zen.spamhaus.org" in dnsbl_row
    assert '<a href="https://check.spamhaus.org/">' in dnsbl_row
    # The TXT reason is DNS data: shown as text, never as markup.
    assert "&lt;b&gt;exploited&lt;/b&gt;" in dnsbl_row and "<b>exploited" not in dnsbl_row
    ptr_status, ptr_row = check_row(listed, "ptr")
    assert ptr_status == "fail"
    assert "light-fail" in ptr_row and "FAIL" in ptr_row
    assert "has no PTR record" in ptr_row

    good = section(dom, "sender-192.0.2.10")
    assert check_row(good, "ptr")[0] == "pass"
    assert check_row(good, "dnsbl")[0] == "pass"
    assert "Provider requirements" in section(dom, "domain-good.test")

    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shot = tmp_path / "status-page.png"
    subprocess.run(
        [*browser_argv(binary, tmp_path / "profile-shot"), f"--screenshot={shot}",
         "--window-size=1280,2000", "--hide-scrollbars", url],
        capture_output=True, text=True, timeout=90, check=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    shutil.copyfile(shot, ARTIFACT)
