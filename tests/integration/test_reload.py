"""Hot reload against real servers: POST /-/reload and SIGHUP.

Intervals are an hour, so anything that runs after a reload ran *because of*
the reload (a new target), and anything that did not re-run kept its
schedule (an unchanged target's last-success timestamp stays put).
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.conftest import ExporterFactory, StackFactory
from tests.integration.exporter_proc import ExporterProcess
from tests.integration.probe_helpers import key, last_success, request, series
from tests.integration.stack import Blocklist, DnsStack

BLOCKLISTS = [Blocklist("v4.bl.test", [("ip4set", ":127.0.0.2:Listed\n127.0.0.2\n192.0.2.99\n")])]
OK = "deliverability_config_last_reload_successful"
STAMP = "deliverability_config_last_reload_success_timestamp_seconds"


def config(stack: DnsStack, senders: list[str], extra: str = "") -> str:
    listed = "".join(f"  - ip: {ip}\n" for ip in senders)
    return f"""\
resolver:
  nameservers: ["127.0.0.1"]
  port: {stack.resolver_port}
  timeout: 1s
dnsbl:
  interval: 1h
  zones: [{{zone: v4.bl.test}}]
ptr:
  interval: 1h
scheduler:
  jitter: 0.1
senders:
{listed}{extra}"""


BROKEN = "  - ip: 192.0.2.300\n"


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory) -> DnsStack:
    return make_stack(blocklists=BLOCKLISTS)


def reload(proc: ExporterProcess) -> tuple[int, str]:
    status, _, body = request(proc, "/-/reload", method="POST")
    return status, body


def dnsbl_targets(proc: ExporterProcess) -> set[str]:
    return {dict(labels)["target"]
            for labels in series(proc.metrics(), "deliverability_check_success")
            if dict(labels)["check"] == "dnsbl"}


def test_a_new_sender_is_checked_at_once_and_others_keep_their_schedule(
    stack: DnsStack, exporter: ExporterFactory
) -> None:
    proc = exporter(config(stack, ["192.0.2.10"]))
    kept = last_success(proc, "dnsbl", "192.0.2.10")
    zone_kept = last_success(proc, "dnsbl", "v4.bl.test")
    assert kept is not None and zone_kept is not None
    assert proc.value("deliverability_dnsbl_listed", ip="192.0.2.99", zone="v4.bl.test") is None
    time.sleep(1.1)  # a re-run now would have a visibly later timestamp
    proc.config_path.write_text(config(stack, ["192.0.2.10", "192.0.2.99"]))
    asked = time.monotonic()
    assert reload(proc) == (200, "reloaded\n")
    proc.wait_for(lambda: proc.value("deliverability_dnsbl_listed", ip="192.0.2.99",
                                     zone="v4.bl.test") == 1.0,
                  timeout=10, what="the new sender's listing")
    # With a one-hour interval only an immediate first run explains this.
    assert time.monotonic() - asked < 5
    assert proc.value("deliverability_check_success", check="dnsbl", target="192.0.2.99") == 1
    assert proc.value("deliverability_dnsbl_listed", ip="192.0.2.10", zone="v4.bl.test") == 0
    assert last_success(proc, "dnsbl", "192.0.2.10") == kept
    assert last_success(proc, "dnsbl", "v4.bl.test") == zone_kept


def test_a_removed_sender_loses_its_series(stack: DnsStack, exporter: ExporterFactory) -> None:
    proc = exporter(config(stack, ["192.0.2.10", "192.0.2.99"]))
    assert dnsbl_targets(proc) == {"v4.bl.test", "192.0.2.10", "192.0.2.99"}
    assert proc.value("deliverability_dnsbl_listed", ip="192.0.2.99", zone="v4.bl.test") == 1
    kept = last_success(proc, "dnsbl", "192.0.2.10")
    proc.config_path.write_text(config(stack, ["192.0.2.10"]))
    assert reload(proc)[0] == 200
    m = proc.metrics()
    assert dnsbl_targets(proc) == {"v4.bl.test", "192.0.2.10"}
    # Every series labelled with the removed address is gone, of every check.
    leftovers = [(n, dict(labels)) for (n, labels), _ in m.items()
                 if "192.0.2.99" in dict(labels).values()]
    assert leftovers == []
    assert last_success(proc, "dnsbl", "192.0.2.10") == kept


def test_a_broken_file_keeps_the_running_config_and_says_where(
    stack: DnsStack, exporter: ExporterFactory
) -> None:
    proc = exporter(config(stack, ["192.0.2.99"]))
    assert proc.value(OK) == 1.0
    good_stamp = proc.value(STAMP)
    assert good_stamp is not None and good_stamp <= time.time()
    before = series(proc.metrics(), "deliverability_dnsbl_listed")
    assert before == {key(ip="192.0.2.99", zone="v4.bl.test"): 1.0}

    proc.config_path.write_text(config(stack, ["192.0.2.99"], BROKEN))
    status, body = reload(proc)
    assert status == 500
    assert "senders[1].ip" in body and "192.0.2.300" in body
    assert proc.value(OK) == 0.0
    assert proc.value(STAMP) == good_stamp
    # The old results are still served, and the old config still runs.
    assert series(proc.metrics(), "deliverability_dnsbl_listed") == before
    assert dnsbl_targets(proc) == {"v4.bl.test", "192.0.2.99"}

    proc.config_path.write_text("senders: [\n")
    status, body = reload(proc)
    assert status == 500 and "invalid YAML" in body
    proc.config_path.write_text("senders:\n  - ip: 192.0.2.99\nsendrs: []\n")
    status, body = reload(proc)
    assert status == 500 and "sendrs: unknown key" in body
    assert proc.value(OK) == 0.0

    time.sleep(0.05)
    proc.config_path.write_text(config(stack, ["192.0.2.99", "192.0.2.10"]))
    assert reload(proc) == (200, "reloaded\n")
    assert proc.value(OK) == 1.0
    stamp = proc.value(STAMP)
    assert stamp is not None and stamp > good_stamp
    proc.wait_for(lambda: dnsbl_targets(proc) == {"v4.bl.test", "192.0.2.99", "192.0.2.10"},
                  timeout=10, what="the fixed config's targets")


def test_reload_is_post_or_put_only(stack: DnsStack, exporter: ExporterFactory) -> None:
    proc = exporter(config(stack, ["192.0.2.10"]))
    assert request(proc, "/-/reload")[0] == 405
    assert request(proc, "/-/reload", method="PUT")[0] == 200


def test_sighup_reloads_the_same_way(stack: DnsStack, exporter: ExporterFactory) -> None:
    proc = exporter(config(stack, ["192.0.2.10"]))
    first = proc.value(STAMP)
    assert first is not None
    kept = last_success(proc, "dnsbl", "192.0.2.10")

    proc.config_path.write_text(config(stack, ["192.0.2.10"], BROKEN))
    proc.signal(signal.SIGHUP)
    proc.wait_for(lambda: proc.value(OK) == 0.0, timeout=10, what="the failed reload")
    assert proc.running()
    assert proc.value(STAMP) == first
    assert "senders[1].ip" in proc.log

    time.sleep(0.05)
    proc.config_path.write_text(config(stack, ["192.0.2.10", "192.0.2.99"]))
    proc.signal(signal.SIGHUP)
    proc.wait_for(lambda: proc.value(OK) == 1.0, timeout=10, what="the good reload")
    stamp = proc.value(STAMP)
    assert stamp is not None and stamp > first
    proc.wait_for(lambda: proc.value("deliverability_dnsbl_listed", ip="192.0.2.99",
                                     zone="v4.bl.test") == 1.0,
                  timeout=10, what="the new sender's listing")
    assert last_success(proc, "dnsbl", "192.0.2.10") == kept
