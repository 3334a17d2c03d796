"""Config decoding: strict, every error with its key path, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config, parse_config_text, parse_duration


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "cfg.yml")
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0),
     ("1h30m", 5400.0), (30, 30.0)],
)
def test_durations_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2x", "", "-1s", "0s", "s", True, "1 h"])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_example_shape_from_the_issue_parses() -> None:
    config = parse_config_text(
        """
resolver:
  nameservers: ["127.0.0.1"]
  port: 53
  timeout: 2s
  attempts: 2
  max_in_flight: 256
dnsbl:
  interval: 5m
  zones:
    - zone: zen.spamhaus.org
      nameservers: ["127.0.0.1"]
      error_codes: ["127.255.255.0/24"]
    - {zone: dbl.spamhaus.org, type: domain}
senders:
  - host: mail.example.com
  - ip: 192.0.2.10
    helo: mail.example.com
  - ip: "2001:DB8:0::25"
domains:
  - name: Example.COM.
"""
    )
    assert config.resolver.timeout == 2.0
    assert config.dnsbl.interval == 300.0
    assert not config.dnsbl.builtin
    assert [z.zone for z in config.dnsbl.zones] == ["zen.spamhaus.org", "dbl.spamhaus.org"]
    assert config.dnsbl.zones[0].error_codes == ("127.255.255.0/24",)
    assert config.senders[0].helo_name == "mail.example.com"
    assert config.senders[2].ip == "2001:db8::25"  # canonical compressed form
    assert config.domains[0].name == "example.com"


def test_omitted_zones_mean_the_builtin_list() -> None:
    assert parse_config_text("dnsbl: {interval: 1m}").dnsbl.builtin


def test_every_error_is_reported_at_once_with_its_key_path() -> None:
    found = problems(
        """
resolver: {timeout: 2x, bogus: 1, port: 70000}
dnsbl:
  zones:
    - zone: "bad zone"
    - {zone: ok.example, type: cidr}
    - {nameservers: [not-an-ip]}
senders:
  - ip: 300.1.1.1
  - {host: mail.example.com, ip: 192.0.2.1}
domains:
  - name: 192.0.2.1
  - {name: example.com, unknown: 1}
extra: true
"""
    )
    text = "\n".join(found)
    for expected in (
        "cfg.yml: resolver.timeout: expected a duration",
        "cfg.yml: resolver.bogus: unknown key",
        "cfg.yml: resolver.port: must be between 1 and 65535",
        "cfg.yml: dnsbl.zones[0].zone: not a valid DNS name",
        "cfg.yml: dnsbl.zones[1].type: must be ip or domain",
        "cfg.yml: dnsbl.zones[2].zone: required",
        "cfg.yml: dnsbl.zones[2].nameservers[0]:",
        "cfg.yml: senders[0].ip:",
        "cfg.yml: senders[1]: give exactly one of host or ip",
        "cfg.yml: domains[0].name: expected a domain name, got the IP address",
        "cfg.yml: domains[1].unknown: unknown key",
        "cfg.yml: extra: unknown key",
    ):
        assert expected in text, f"missing {expected!r} in:\n{text}"


def test_duplicates_are_refused() -> None:
    found = problems("senders: [192.0.2.1, 192.0.2.1]\ndomains: [a.example, A.example.]")
    assert any("senders[1]: duplicate sender 192.0.2.1" in p for p in found)
    assert any("domains[1].name: duplicate domain a.example" in p for p in found)


def test_invalid_yaml_names_line_and_column() -> None:
    found = problems("resolver:\n  port: [1\n")
    assert len(found) == 1 and found[0].startswith("cfg.yml: line ")


def test_wrong_types_are_refused() -> None:
    found = problems("resolver: [1, 2]\nsenders: {ip: 192.0.2.1}\n")
    assert "cfg.yml: resolver: expected a mapping, got list" in found
    assert "cfg.yml: senders: expected a list, got dict" in found


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "missing.yml"))
    assert "missing.yml: cannot read" in str(info.value)


def test_empty_file_is_a_valid_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("")
    config = load_config(str(path))
    assert config.senders == () and config.dnsbl.builtin
