"""The status page: a light per check with words, evidence, fixes, delisting links, escaping."""

from __future__ import annotations

import re

from exporter.checks.base import Finding, Result, Sample, Status
from exporter.config import parse_config_text
from exporter.status_page import render_status_page
from exporter.store import Store

CONFIG = """
dnsbl:
  zones: [zen.spamhaus.org]
senders:
  - ip: 192.0.2.10
domains:
  - name: example.com
    senders: [192.0.2.10]
"""

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _s(metric: str, value: float, **labels: str) -> Sample:
    return Sample(metric, tuple(sorted(labels.items())), value)


def store() -> Store:
    st = Store()
    ip = "192.0.2.10"
    st.update(Result(
        "dnsbl", ip, True, 0.1, 1000.0,
        (_s("deliverability_dnsbl_listed", 1, ip=ip, zone="zen.spamhaus.org"),
         _s("deliverability_dnsbl_listings", 1, ip=ip),
         _s("deliverability_dnsbl_listing_info", 1, ip=ip, zone="zen.spamhaus.org",
            code="127.0.0.4", reason=HOSTILE)),
        (), (Finding(Status.FAIL, f"{ip} is listed on zen.spamhaus.org",
                     evidence=f"TXT {HOSTILE}", fix="request removal"),),
    ))
    st.update(Result(
        "ptr", ip, True, 0.1, 1000.0,
        (_s("deliverability_ptr_present", 0, ip=ip), _s("deliverability_fcrdns_valid", 0, ip=ip)),
        (), (Finding(Status.FAIL, f"{ip} has no PTR record", evidence="PTR: nxdomain",
                     fix="Ask your hosting provider"),),
    ))
    st.update(Result(
        "spf", "example.com", True, 0.1, 1000.0,
        (_s("deliverability_spf_valid", 1, domain="example.com"),),
        (), (Finding(Status.PASS, "SPF record valid", evidence="v=spf1 ip4:192.0.2.10 -all"),),
    ))
    st.update(Result("dmarc", "example.com", False, 2.0, 1000.0, (),
                     ("lookup failed: TXT _dmarc.example.com: timeout",), ()))
    return st


def page() -> str:
    return render_status_page(store(), parse_config_text(CONFIG), now=1030.0)


def row(html_text: str, check: str, section: str) -> str:
    sec = re.search(rf'<section class="[a-z]+" id="{re.escape(section)}">(.*?)</section>',
                    html_text, re.S)
    assert sec, section
    m = re.search(rf'<tr class="check check-{check}" data-status="([a-z]+)">(.*?)</tr>',
                  sec.group(1), re.S)
    assert m, check
    return m.group(1) + " " + m.group(2)


def test_page_refreshes_itself_links_metrics_and_has_no_script() -> None:
    text = page()
    assert '<meta http-equiv="refresh" content="30">' in text
    assert 'href="/metrics"' in text
    assert "<script" not in text


def test_hostile_dns_data_is_escaped_everywhere() -> None:
    text = page()
    assert HOSTILE not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "<img" not in text


def test_listed_ip_shows_its_reason_code_meaning_and_delisting_link() -> None:
    dnsbl = row(page(), "dnsbl", "sender-192.0.2.10")
    assert dnsbl.startswith("fail ")
    assert '<a href="https://check.spamhaus.org/">' in dnsbl
    assert "127.0.0.4" in dnsbl and "XBL" in dnsbl


def test_every_light_has_words_beside_the_colour() -> None:
    ptr = row(page(), "ptr", "sender-192.0.2.10")
    assert ptr.startswith("fail ")
    assert 'class="light light-fail" aria-hidden="true"></span>FAIL' in ptr
    spf = row(page(), "spf", "domain-example.com")
    assert spf.startswith("pass ") and "PASS" in spf


def test_a_failed_run_is_could_not_check_with_its_last_success() -> None:
    dmarc = row(page(), "dmarc", "domain-example.com")
    assert dmarc.startswith("error ")
    assert "COULD NOT CHECK" in dmarc
    assert "timeout" in dmarc
    assert "last successful run: never" in dmarc


def test_provider_compliance_is_shown_per_domain_without_guessing() -> None:
    text = page()
    sec = text.split('id="domain-example.com"')[1].split("</section>")[0]
    assert "Provider requirements" in sec
    gmail = re.search(r'<tr class="provider" data-provider="gmail" data-status="([a-z]+)">(.*?)'
                      r"</tr>", sec, re.S)
    assert gmail
    # PTR is missing: a definite "not compliant"; DMARC could not be checked: unknown.
    assert gmail.group(1) == "warn"
    assert "not compliant" in gmail.group(2)
    assert "dmarc_present" in gmail.group(2) and "last run failed" in gmail.group(2)
    assert "cannot be seen from outside" in gmail.group(2)


def test_an_empty_store_says_no_results_yet() -> None:
    text = render_status_page(Store(), parse_config_text(CONFIG), now=0)
    assert "No results yet" in text


async def test_the_handler_serves_the_page_from_the_running_exporter() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from exporter.app import Exporter
    from exporter.status_page import status_page
    from exporter.web import EXPORTER_KEY

    exporter = Exporter(parse_config_text(CONFIG))
    for result in (r for r in [store().get("ptr", "192.0.2.10")] if r):
        exporter.store.entries[("ptr", "192.0.2.10")] = result
    app = web.Application()
    app[EXPORTER_KEY] = exporter
    app.router.add_get("/", status_page)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        body = await resp.text()
    assert "192.0.2.10 has no PTR record" in body


def test_overview_has_a_light_per_check_for_every_target() -> None:
    text = page()
    overview = text.split('<table class="overview">')[1].split("</table>")[0]
    assert '<a href="#domain-example.com">example.com</a>' in overview
    assert '<a href="#sender-192.0.2.10">192.0.2.10</a>' in overview
    ip_row = overview.split('href="#sender-192.0.2.10"')[1].split("</tr>")[0]
    # dnsbl and ptr both fail for the IP; spf and dmarc do not apply to it.
    assert ip_row.count("light-fail") == 2
    assert ip_row.count("—") == 2


def test_unknown_provider_inputs_are_labelled_unknown() -> None:
    text = page()
    gmail = text.split('data-provider="gmail"')[1].split("</tr>")[0]
    dmarc = next(li for li in gmail.split("<li>") if "dmarc_present" in li)
    assert "light-unknown" in dmarc and "UNKNOWN" in dmarc
    # A definite failure opens the folded provider table.
    assert '<details class="providers" open>' in text
