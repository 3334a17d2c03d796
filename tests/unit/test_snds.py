"""Microsoft SNDS: CSV parsing, which IPs get series, sender resolution."""

from __future__ import annotations

import ipaddress
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from exporter.checks.base import CheckContext, Findings, Status, Target
from exporter.checks.snds import (
    SndsCheck,
    SndsError,
    _record,
    parse_data_csv,
    parse_ip_status_csv,
    parse_rate,
    parse_time,
)
from exporter.config import parse_config_text
from exporter.dns import LookupFailed, Outcome
from tests.fakes import FakeResolver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "snds"


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def samples(f: Findings, metric: str) -> dict[str, float]:
    return {dict(s.labels)["ip"]: s.value for s in f.samples if s.metric == metric}


def test_data_feed_rows_are_parsed_and_periods_of_one_ip_combined() -> None:
    data = parse_data_csv(text("data.csv"))
    assert set(data) == {"192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.200"}
    green = data["192.0.2.10"]
    assert (green.filter_result, green.complaint_rate, green.complaint_is_bound) == (0, 0.001, True)
    assert (green.rcpt_commands, green.data_commands, green.recipients) == (14129, 14129, 13025)
    yellow = data["192.0.2.11"]
    assert yellow.filter_result == 1 and yellow.complaint_rate == pytest.approx(0.004)
    assert yellow.trap_hits == 40
    mixed = data["192.0.2.12"]  # GREEN 7-11 AM, then RED 1-11 PM
    assert mixed.filter_result == 2
    assert mixed.complaint_rate == pytest.approx(0.025) and not mixed.complaint_is_bound
    assert (mixed.rcpt_commands, mixed.data_commands, mixed.trap_hits) == (16121, 16111, 7)
    pst = timezone(timedelta(hours=-8))
    assert mixed.activity_end == datetime(2026, 11, 29, 23, 0, tzinfo=pst).timestamp()


def test_empty_feed_is_no_data() -> None:
    assert parse_data_csv(text("data_empty.csv")) == {}


@pytest.mark.parametrize(("raw", "expected"), [
    ("< 0.1%", (0.001, True)), ("2.5%", (0.025, False)), ("0%", (0.0, False)), ("", (None, False)),
])
def test_complaint_rate_text(raw: str, expected: tuple[float | None, bool]) -> None:
    rate, bound = parse_rate(raw)
    assert (rate if rate is None else pytest.approx(rate), bound) == expected


def test_times_are_pacific_standard_time() -> None:
    assert parse_time("1/2/2026 1:30 PM") == datetime(2026, 1, 2, 21, 30,
                                                      tzinfo=UTC).timestamp()
    assert parse_time("") is None


@pytest.mark.parametrize("bad", [
    text("data_bad_key.html"),
    "192.0.2.1,a,b\r\n",
    "192.0.2.1,,,1,1,1,PURPLE,< 0.1%,,,0,,,\r\n",
    "192.0.2.1,,,1,1,1,GREEN,lots,,,0,,,\r\n",
    "not-an-ip,,,1,1,1,GREEN,< 0.1%,,,0,,,\r\n" * 2,
])
def test_a_feed_not_in_the_documented_shape_is_an_error(bad: str) -> None:
    with pytest.raises(SndsError):
        parse_data_csv(bad)


def test_ip_status_ranges_contain_their_addresses() -> None:
    ranges = parse_ip_status_csv(text("ip_status.csv"))
    assert len(ranges) == 2
    blocked = [r for r in ranges if ipaddress.ip_address("192.0.2.35") in r]
    assert blocked and "complaints" in blocked[0].reason
    assert not any(ipaddress.ip_address("192.0.2.40") in r for r in ranges)
    with pytest.raises(SndsError):
        parse_ip_status_csv("<html>nope</html>")


def test_series_only_for_configured_ips_the_feeds_know() -> None:
    data = parse_data_csv(text("data.csv"))
    blocked = parse_ip_status_csv(text("ip_status.csv"))
    f = Findings()
    _record(f, ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.33", "192.0.2.50"],
            data, blocked)
    assert samples(f, "deliverability_snds_filter_result") == {
        "192.0.2.10": 0, "192.0.2.11": 1, "192.0.2.12": 2}
    # 192.0.2.33 is in a blocked range but sent nothing that day: blocked, no traffic series.
    assert samples(f, "deliverability_snds_blocked") == {
        "192.0.2.10": 0, "192.0.2.11": 0, "192.0.2.12": 1, "192.0.2.33": 1}
    assert samples(f, "deliverability_snds_trap_hits") == {
        "192.0.2.10": 0, "192.0.2.11": 40, "192.0.2.12": 7}
    assert samples(f, "deliverability_snds_messages")["192.0.2.12"] == 12960 + 1990
    assert samples(f, "deliverability_snds_complaint_rate_ratio")["192.0.2.10"] == 0.001
    every_ip = {dict(s.labels)["ip"] for s in f.samples}
    assert "192.0.2.200" not in every_ip and "192.0.2.50" not in every_ip
    titles = {(x.status, x.title) for x in f.findings}
    assert (Status.INFO, "SNDS has no data for 192.0.2.50") in titles
    assert (Status.FAIL, "Outlook.com blocks 192.0.2.12") in titles
    assert (Status.FAIL, "SNDS rates 192.0.2.12 red: most of its mail goes to junk") in titles
    assert (Status.WARN, "SNDS rates 192.0.2.11 yellow: some of its mail goes to junk") in titles
    assert (Status.PASS, "SNDS rates 192.0.2.10 green") in titles


def test_target_only_with_a_key_file(tmp_path: Path) -> None:
    key = tmp_path / "snds.key"
    key.write_text("abc\n")
    check = SndsCheck()
    assert check.targets(parse_config_text("senders: [192.0.2.10]\n")) == []
    config = parse_config_text(
        f"senders: [192.0.2.10, mail.example.org]\nsnds: {{key_file: {key}}}\n")
    [target] = check.targets(config)
    assert target.key == "snds"
    assert target.param("ips") == ("192.0.2.10",)
    assert target.param("hosts") == ("mail.example.org",)
    assert check.interval(config) == 3600.0


def _ctx(resolver: FakeResolver) -> CheckContext:
    return CheckContext(resolver=resolver, config=parse_config_text(""),
                        log=logging.getLogger("test"))


async def test_sender_hosts_are_resolved_through_the_project_resolver() -> None:
    resolver = FakeResolver({("mail.example.org", "A"): ["192.0.2.11", "192.0.2.10"],
                             ("v6.example.org", "AAAA"): "2001:db8::1"})
    check = SndsCheck()
    target = Target("snds", "snds", (("ips", ("192.0.2.10", "2001:db8::25")),
                                     ("hosts", ("mail.example.org", "v6.example.org"))))
    f = Findings()
    ips = await check._sender_ips(target, _ctx(resolver), f)
    assert ips == ["192.0.2.10", "192.0.2.11"]
    assert ("mail.example.org", "A") in resolver.asked
    assert any("IPv6" in x.title for x in f.findings)


async def test_unanswered_sender_lookup_fails_the_run() -> None:
    resolver = FakeResolver({("mail.example.org", "A"): Outcome.TIMEOUT})
    target = Target("snds", "snds", (("ips", ()), ("hosts", ("mail.example.org",))))
    with pytest.raises(LookupFailed):
        await SndsCheck()._sender_ips(target, _ctx(resolver), Findings())
