"""``check`` and ``explain`` as a user runs them, against real DNS servers on loopback.

Nothing here may reach beyond loopback: the domains have a null MX or
``smtp: false`` and every command gets ``--no-smtp``, so no SMTP check ever
dials a 192.0.2.x address from the zones.

Knot serves the zones, rbldnsd a blocklist under the built-in name
zen.spamhaus.org, a silent port plays a dead zone, and unbound (stub-zoned to
all of them, never recursing) is the resolver given with ``--resolver``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import StackFactory
from tests.integration.stack import Blocklist, DnsStack, Zone

REPO_ROOT = Path(__file__).resolve().parents[2]

ZONES = [
    Zone("good.test", """\
@      TXT  "v=spf1 ip4:192.0.2.10 -all"
_dmarc TXT  "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"
@      MX   0 .
mail   A    192.0.2.10
"""),
    Zone("2.0.192.in-addr.arpa", "10 PTR mail.good.test.\n"),
]
BLOCKLISTS = [
    Blocklist("zen.spamhaus.org",
              [("ip4set", ":127.0.0.2:Listed in SBL\n192.0.2.99\n127.0.0.2\n")]),
]
SPAMHAUS_BOUNCE = (
    "host mx.example.org[198.51.100.5] said: 554 5.7.1 Service unavailable; Client host "
    "[192.0.2.99] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.99"
)


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory) -> DnsStack:
    return make_stack(zones=ZONES, blocklists=BLOCKLISTS, silent_zones=["dead.test"])


def run(command: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.pop("NO_COLOR", None)
    code = (f"import sys; from exporter.{'report' if command == 'check' else 'bounce'} import "
            f"{command}_main as m; sys.exit(m(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          input=stdin, timeout=120, env=env, cwd=REPO_ROOT)


def resolver(stack: DnsStack) -> str:
    return f"{stack.resolver_host}:{stack.resolver_port}"


def test_a_clean_sender_exits_0_with_plain_text_when_piped(stack: DnsStack) -> None:
    p = run("check", "good.test", "--ip", "192.0.2.10", "--helo", "mail.good.test",
            "--resolver", resolver(stack), "--dnsbl-zone", "zen.spamhaus.org", "--no-smtp")
    assert "\x1b[" not in p.stdout
    assert p.stderr == ""  # no progress display: stderr is not a terminal
    # Only the checks that pass on these zones are asserted; the exit code sums up all.
    assert "192.0.2.10 is not listed on any healthy zone" in p.stdout
    assert "192.0.2.10: PTR mail.good.test is forward-confirmed" in p.stdout
    doc = json.loads(run("check", "good.test", "--ip", "192.0.2.10", "--helo", "mail.good.test",
                         "--resolver", resolver(stack), "--dnsbl-zone", "zen.spamhaus.org",
                         "--no-smtp", "--format", "json").stdout)
    statuses = {i["status"] for g in doc["groups"] if g["name"] != "Provider requirements"
                for i in g["items"]}
    assert "error" not in statuses and "fail" not in statuses, doc
    assert p.returncode == doc["exit_code"] and doc["exit_code"] in (0, 1)


def test_a_listed_ip_without_ptr_fails_with_the_delisting_page(stack: DnsStack) -> None:
    p = run("check", "good.test", "--ip", "192.0.2.99", "--resolver", resolver(stack),
            "--dnsbl-zone", "zen.spamhaus.org", "--no-smtp", "--format", "json")
    assert p.returncode == 2, p.stderr
    doc = json.loads(p.stdout)
    items = [i for g in doc["groups"] for i in g["items"]]
    listed = [i for i in items if i["title"] == "192.0.2.99 is listed on zen.spamhaus.org"]
    assert listed and listed[0]["status"] == "fail"
    assert "https://check.spamhaus.org/" in listed[0]["fix"]
    assert any(i["title"] == "192.0.2.99 has no PTR record" and i["status"] == "fail"
               for i in items)
    gmail = next(v for v in doc["providers"] if v["provider"] == "gmail")
    assert gmail["compliant"] is False
    ptr = next(r for r in gmail["requirements"] if r["name"] == "ptr_present")
    assert ptr["met"] is False


def test_an_unanswered_zone_is_could_not_check_and_exits_2(
    stack: DnsStack, tmp_path: Path
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"""
resolver:
  nameservers: [{stack.resolver_host}]
  port: {stack.resolver_port}
  timeout: 1s
  attempts: 1
dnsbl:
  zones: [zen.spamhaus.org]
domains:
  - name: dead.test
    smtp: false
scheduler:
  run_timeout: 20s
""")
    p = run("check", "--config.file", str(config), "--format", "json")
    assert p.returncode == 2
    doc = json.loads(p.stdout)
    spf = next(r for r in doc["runs"] if r["check"] == "spf")
    assert spf["success"] is False and spf["errors"]
    items = [i for g in doc["groups"] for i in g["items"] if i["check"] == "spf"]
    assert [i["status"] for i in items] == ["error"]
    assert items[0]["title"].startswith("could not check spf for dead.test")


def test_explain_finds_the_ip_runs_dnsbl_and_names_it_failing(stack: DnsStack) -> None:
    p = run("explain", "--resolver", resolver(stack), "--dnsbl-zone", "zen.spamhaus.org",
            "--no-smtp", stdin=SPAMHAUS_BOUNCE)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Spamhaus" in p.stdout
    assert "Sending IP in the bounce: 192.0.2.99" in p.stdout
    assert "192.0.2.99 is listed on zen.spamhaus.org" in p.stdout
    assert "Failing: dnsbl" in p.stdout
