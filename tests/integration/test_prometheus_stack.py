"""Issue 5's end to end: exporter → real Prometheus → real Alertmanager → a webhook.

Everything runs on loopback: Knot, rbldnsd and unbound (tests/integration/stack.py)
serve the test zones, a small STARTTLS server here plays the MX host, the
exporter runs as a user runs it, Prometheus (Debian ``prometheus``) scrapes it
every second and evaluates the bundled rules, Alertmanager (Debian
``prometheus-alertmanager``) routes with the bundled routing tree, and an HTTP
server in this test receives the webhooks.

Two things are rewritten for the test, and only these: every ``for:`` of
alerts.yml becomes 0s (the real values are minutes, and the point here is that
the real expressions fire on the real exporter's output, which
prometheus/alerts.test.yml checks with the real ``for:`` values), and
alertmanager.yml's receivers are replaced by webhooks to this test (its email
receiver would try to reach an SMTP relay) with second-long group timers.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.conftest import StackFactory
from tests.integration.exporter_proc import ExporterProcess
from tests.integration.pki import TestCA
from tests.integration.stack import Blocklist, DnsStack, Zone, free_port, require_binaries

REPO = Path(__file__).resolve().parents[2]
LISTED_IP = "192.0.2.99"
CLEAN_IP = "192.0.2.10"
DOMAIN = "shop.test"
MX = "mx.shop.test"
IP_ZONE = "bl.test"
LISTING_REASON = "Listed for spam, see http://bl.test/lookup"


# ---------------------------------------------------------------- test servers


def _dkim_txt() -> str:
    """A 2048-bit RSA DKIM key record, split into <=255-character strings."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()
    return " ".join(f'"{record[i:i + 200]}"' for i in range(0, len(record), 200))


def zones() -> list[Zone]:
    return [
        Zone(
            DOMAIN,
            f"""\
@             MX   10 {MX}.
@             TXT  "v=spf1 ip4:{CLEAN_IP} -all"
mail          A    {CLEAN_IP}
listed        A    {LISTED_IP}
mx            A    127.0.0.1
_dmarc        TXT  "v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}"
_smtp._tls    TXT  "v=TLSRPTv1; rua=mailto:tlsrpt@{DOMAIN}"
s1._domainkey TXT  {_dkim_txt()}
""",
            signed=True,
        ),
        Zone("2.0.192.in-addr.arpa", f"10 PTR mail.{DOMAIN}.\n99 PTR listed.{DOMAIN}.\n"),
    ]


BLOCKLISTS = [
    Blocklist(IP_ZONE, [("ip4set", f":127.0.0.2:{LISTING_REASON}\n{LISTED_IP}\n127.0.0.2\n")]),
    Blocklist("dbl.test", [("dnset", "spam.test :127.0.1.2:Domain seen in spam\ntest\n")]),
]
#: Its nameserver never answers: every check of it fails, as the "failing
#: checks" panel needs.
SILENT_DOMAIN = "silent.test"


class StartTlsServer:
    """Just enough ESMTP for the probe: banner, EHLO with STARTTLS, TLS, QUIT.

    It never accepts mail (the probe never sends any)."""

    def __init__(self, chain: Path, key: Path, name: str) -> None:
        self.name = name
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(chain, key)
        self.sock = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.sock.getsockname()[1]
        self.sessions = 0
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        self.sessions += 1
        conn.settimeout(10)
        tls = False
        try:
            stream = conn.makefile("rwb")
            stream.write(f"220 {self.name} ESMTP test\r\n".encode())
            stream.flush()
            while line := stream.readline():
                verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    extensions = ["PIPELINING", "8BITMIME"] + ([] if tls else ["STARTTLS"])
                    reply = [f"250-{self.name}", *(f"250-{e}" for e in extensions[:-1]),
                             f"250 {extensions[-1]}"]
                    stream.write(("\r\n".join(reply) + "\r\n").encode())
                elif verb == "STARTTLS" and not tls:
                    stream.write(b"220 2.0.0 Ready to start TLS\r\n")
                    stream.flush()
                    conn = self.ctx.wrap_socket(conn, server_side=True)
                    stream = conn.makefile("rwb")
                    tls = True
                    continue
                elif verb == "QUIT":
                    stream.write(b"221 2.0.0 Bye\r\n")
                    stream.flush()
                    break
                else:
                    stream.write(b"502 5.5.2 Not here\r\n")
                stream.flush()
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._closed.set()
        self.sock.close()


@dataclass
class Webhook:
    """Collects Alertmanager's webhook posts, by path (= receiver)."""

    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ThreadingHTTPServer:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook.lock:
                    hook.posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """(receiver path, alert) for every alert in every post so far."""
        with self.lock:
            return [(path, a) for path, post in self.posts for a in post["alerts"]]


# ------------------------------------------------------------------- helpers


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    require_binaries(names[0])  # skips, or fails in CI, with the package to install
    raise AssertionError("unreachable")


def _wait(pred: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs()}")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def rules_copy(tmp: Path) -> Path:
    """alerts.yml with every ``for:`` set to 0s, so the test needs no minutes."""
    text = (REPO / "prometheus" / "alerts.yml").read_text()
    rewritten, count = re.subn(r"(?m)^(\s+)for: \S+$", r"\g<1>for: 0s", text)
    assert count == len(re.findall(r"(?m)^\s+- alert: ", text))
    path = tmp / "alerts.yml"
    path.write_text(rewritten)
    return path



def alertmanager_config(webhook_url: str) -> str:
    """The shipped routing tree and inhibitions, with webhook receivers and short timers."""
    doc = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    doc.pop("global", None)
    for receiver in doc["receivers"]:
        name = receiver["name"]
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{"url": f"{webhook_url}/{name}", "send_resolved": False}]
    doc["route"].update(group_wait="1s", group_interval="1s")
    return yaml.safe_dump(doc)


@dataclass
class Stack:
    dns: DnsStack
    exporter: ExporterProcess
    prometheus_url: str
    webhook: Webhook
    logs: Callable[[], str]

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        data = _get_json(url)
        assert data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result


def _config(dns: DnsStack, smtp_port: int, ca_file: Path) -> str:
    return f"""\
resolver:
  nameservers: ["{dns.resolver_host}"]
  port: {dns.resolver_port}
  timeout: 1s
  attempts: 2
dnsbl:
  zones:
    - zone: {IP_ZONE}
    - zone: dbl.test
      type: domain
smtp:
  port: {smtp_port}
  timeout: 5s
  helo: monitor.{DOMAIN}
tls:
  ca_file: {ca_file}
senders:
  - ip: {CLEAN_IP}
    helo: mail.{DOMAIN}
  - ip: {LISTED_IP}
    helo: listed.{DOMAIN}
domains:
  - name: {DOMAIN}
    dkim_selectors: [s1]
    senders: [{CLEAN_IP}]
  - name: {SILENT_DOMAIN}
    smtp: false
"""


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = _binary("prometheus")
    alertmanager_bin = _binary("prometheus-alertmanager", "alertmanager")
    tmp = tmp_path_factory.mktemp("promstack")
    dns = make_stack(zones=zones(), blocklists=BLOCKLISTS, silent_zones=[SILENT_DOMAIN])

    ca = TestCA()
    ca_file = ca.write(tmp / "ca.pem")
    chain, key = ca.issue(MX).write(tmp, "mx")
    smtp = StartTlsServer(chain, key, MX)

    webhook = Webhook()
    hook_server = webhook.start()
    hook_url = f"http://127.0.0.1:{hook_server.server_address[1]}"

    procs: list[subprocess.Popen[bytes]] = []
    logs: dict[str, Path] = {}

    def start(name: str, argv: list[str]) -> None:
        log = tmp / f"{name}.log"
        logs[name] = log
        with log.open("wb") as out:
            procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=tmp))

    def all_logs() -> str:
        parts = [f"--- {n} ---\n{p.read_text(errors='replace')[-6000:]}" for n, p in logs.items()]
        return "\n".join(parts)

    exporter = ExporterProcess(_config(dns, smtp.port, ca_file), tmp / "exporter")
    try:
        am_port = free_port()
        (tmp / "alertmanager.yml").write_text(alertmanager_config(hook_url))
        start("alertmanager", [
            alertmanager_bin,
            f"--config.file={tmp / 'alertmanager.yml'}",
            f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",  # no gossip: nothing but loopback HTTP
        ])
        exporter.start(timeout=90)
        prom_port = free_port()
        rules = rules_copy(tmp)
        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{
                "job_name": "deliverability",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
            }],
        }))
        start("prometheus", [
            prometheus_bin,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ])
        prom_url = f"http://127.0.0.1:{prom_port}"
        _wait(lambda: _get_json(f"{prom_url}/api/v1/query?query=up")["data"]["result"] != [],
              60, "Prometheus to scrape the exporter", all_logs)
        yield Stack(dns, exporter, prom_url, webhook,
                    lambda: all_logs() + f"\n--- exporter ---\n{exporter.log[-6000:]}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        exporter.kill()
        hook_server.shutdown()
        smtp.close()


# --------------------------------------------------------------------- tests


def _listed_alerts(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    return [(path, a) for path, a in stack.webhook.alerts()
            if a["labels"].get("alertname") == "DeliverabilityIPListed"]


def test_the_listed_ip_pages_through_alertmanager_with_ip_and_zone(stack: Stack) -> None:
    _wait(lambda: any(a["labels"].get("ip") == LISTED_IP for _, a in _listed_alerts(stack)),
          90, f"the webhook to receive DeliverabilityIPListed for {LISTED_IP}", stack.logs)
    path, alert = next((p, a) for p, a in _listed_alerts(stack)
                       if a["labels"].get("ip") == LISTED_IP)
    assert path == "/critical"  # severity-based routing of the shipped alertmanager.yml
    assert alert["status"] == "firing"
    assert alert["labels"]["zone"] == IP_ZONE
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["job"] == "deliverability"
    description = alert["annotations"]["description"]
    assert f"{LISTED_IP} is listed on {IP_ZONE} (return code 127.0.0.2" in description
    assert LISTING_REASON in description
    assert alert["annotations"]["runbook_url"].endswith("#deliverabilityiplisted")


def test_the_clean_ip_gets_no_blocklist_alert(stack: Stack) -> None:
    # The clean IP's series exists with 0, so the rule had every chance to fire...
    series = stack.query(f'deliverability_dnsbl_listed{{ip="{CLEAN_IP}", zone="{IP_ZONE}"}}')
    assert [s["value"][1] for s in series] == ["0"], series
    _wait(lambda: bool(_listed_alerts(stack)), 90, "any blocklist alert", stack.logs)
    # ... and a few more evaluation and notification rounds pass without it.
    time.sleep(5)
    firing = stack.query('ALERTS{alertname="DeliverabilityIPListed", alertstate="firing"}')
    assert {s["metric"]["ip"] for s in firing} == {LISTED_IP}
    assert all(a["labels"].get("ip") != CLEAN_IP for _, a in _listed_alerts(stack))


def test_a_check_that_never_succeeds_warns_by_the_warning_route(stack: Stack) -> None:
    def failing() -> list[tuple[str, dict[str, Any]]]:
        return [(path, a) for path, a in stack.webhook.alerts()
                if a["labels"].get("alertname") == "DeliverabilityCheckFailing"
                and a["labels"].get("target") == SILENT_DOMAIN]

    _wait(lambda: bool(failing()), 90,
          f"DeliverabilityCheckFailing for {SILENT_DOMAIN}", stack.logs)
    assert {path for path, _ in failing()} == {"/email"}
    assert {a["labels"]["severity"] for _, a in failing()} == {"warning"}
    assert "dmarc" in {a["labels"]["check"] for _, a in failing()}
    # The domain whose DNS answers has no failing check at all.
    assert all(a["labels"].get("target") != DOMAIN for _, a in stack.webhook.alerts()
               if a["labels"].get("alertname") == "DeliverabilityCheckFailing")


def test_every_rule_evaluates_without_error_on_real_data(stack: Stack) -> None:
    time.sleep(3)  # a few evaluation rounds after the first scrape
    groups = _get_json(f"{stack.prometheus_url}/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) >= 20
    broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not broken, broken


# ------------------------------------------------------ dashboards on real data


def _variable_values(stack: Stack, variable: dict[str, Any]) -> list[str]:
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"].strip())
    assert m, variable["definition"]
    selector, label = m.groups()
    url = f"{stack.prometheus_url}/api/v1/series?" + urllib.parse.urlencode({"match[]": selector})
    return sorted({s[label] for s in _get_json(url)["data"] if label in s})


def _literal(value: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: value


def _substitute(expr: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        expr = expr.replace("${" + name + "}", value)
        # A function replacement, so a regex value like ".+" is inserted literally.
        expr = re.sub(r"\$" + re.escape(name) + r"\b", _literal(value), expr)
    return expr


def _dashboard_queries(stack: Stack, problems: list[str]) -> Iterator[tuple[str, str, str]]:
    """(dashboard, panel title, expr with its variables filled in) for every query.

    A variable without values is a problem (its dropdown would be empty); it is
    filled with ".+" so the panels behind it are still asked.
    """
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        values = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            found = _variable_values(stack, variable)
            if not found:
                problems.append(f"{path.name}: variable {variable['name']} has no values")
                values[variable["name"]] = ".+"
            elif variable["name"] == "domain":
                if DOMAIN not in found:
                    problems.append(f"{path.name}: {DOMAIN} not among the domains {found}")
                values["domain"] = DOMAIN
            elif variable.get("includeAll"):
                values[variable["name"]] = variable.get("allValue") or "|".join(found)
            else:
                values[variable["name"]] = found[0]
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield path.name, panel["title"], _substitute(target["expr"], values)


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    # Every check has run (the exporter was ready) and Prometheus has scraped
    # it for a while: rate() needs two samples in its window.
    time.sleep(3)
    problems: list[str] = []
    count = 0
    for board, title, expr in _dashboard_queries(stack, problems):
        assert "$" not in expr, f"{board} / {title}: unsubstituted variable in {expr}"
        count += 1
        if not stack.query(expr):
            problems.append(f"{board} / {title}: no data for {expr}")
    assert count >= 30
    assert not problems, "\n".join(problems) + "\n" + stack.logs()
