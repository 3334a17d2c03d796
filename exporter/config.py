"""The configuration: a typed, strict model built from YAML.

Every error carries the file and the key path (``dnsbl.zones[2].zone``) and
all of them are reported at once, so a user fixes the file in one pass. A
config is built and validated whole before anyone uses it; a running
exporter swaps a new one in only when it is valid.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from exporter.dns import normalize_name

T = TypeVar("T")

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class ConfigError(Exception):
    """Every problem found in a config file, each as ``file: key.path: reason``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def parse_duration(text: object) -> float:
    """``500ms``, ``2s``, ``5m``, ``1h``, ``1d``, ``1h30m`` → seconds. Bare numbers are seconds."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 30s or 5m, got {text!r}")
    if isinstance(text, int | float):
        if not math.isfinite(text) or text <= 0:
            raise ValueError(f"duration must be positive, got {text!r}")
        return float(text)
    if not isinstance(text, str) or not _DURATION_RE.match(text.strip()):
        raise ValueError(f"expected a duration like 500ms, 30s, 5m or 1h, got {text!r}")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return seconds


def canonical_ip(text: object) -> str:
    """An IP address in canonical compressed form, or ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"expected an IP address, got {text!r}")
    return str(ipaddress.ip_address(text.strip()))


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def valid_hostname(text: object) -> str:
    """A DNS name (lower-cased, no trailing dot), or ValueError saying why not."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a domain name, got {text!r}")
    name = normalize_name(text)
    if is_ip(name):
        raise ValueError(f"expected a domain name, got the IP address {text!r}")
    if len(name) > 253:
        raise ValueError(f"name longer than 253 characters: {text!r}")
    labels = name.split(".")
    for label in labels:
        if not _LABEL_RE.match(label):
            raise ValueError(f"not a valid DNS name: {text!r} (bad label {label!r})")
    return name


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    nameservers: tuple[str, ...] = ()  # empty: the system's resolv.conf
    port: int = 53
    timeout: float = 2.0
    attempts: int = 2
    max_in_flight: int = 256
    #: "datagram" (the lean client) or "dnspython" (the reference transport).
    transport: str = "datagram"


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    zone: str
    type: str = "ip"  # "ip" or "domain"
    nameservers: tuple[str, ...] = ()
    port: int = 53
    error_codes: tuple[str, ...] = ()  # networks whose answers mean "query refused"
    #: Query budget (0: unlimited): the operator's quota, per second and per UTC day.
    budget_per_second: float = 0.0
    budget_per_day: int = 0


@dataclass(frozen=True, slots=True)
class DnsblConfig:
    interval: float = 300.0
    zones: tuple[ZoneConfig, ...] = ()
    #: True when the user listed no zones and the curated built-in set applies.
    builtin: bool = True


@dataclass(frozen=True, slots=True)
class IntervalConfig:
    interval: float = 3600.0


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    interval: float = 3600.0
    port: int = 25
    timeout: float = 10.0
    helo: str = ""  # empty: the machine's FQDN


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: str = ""


@dataclass(frozen=True, slots=True)
class MtaStsConfig:
    interval: float = 3600.0
    #: The HTTPS port policies are fetched from (443; other values for testing).
    port: int = 443
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class PostmasterConfig:
    """Google Postmaster Tools API access (issue: what the receivers say)."""

    interval: float = 3600.0
    base_url: str = "https://gmailpostmastertools.googleapis.com"
    token_url: str = "https://oauth2.googleapis.com/token"


@dataclass(frozen=True, slots=True)
class SndsConfig:
    """Microsoft SNDS automated data access; enabled when key_file is set."""

    key_file: str = ""
    interval: float = 3600.0
    base_url: str = "https://sendersupport.olc.protection.outlook.com/snds"


@dataclass(frozen=True, slots=True)
class SenderConfig:
    """A sending host (its A/AAAA addresses are checked) or a single IP."""

    host: str = ""
    ip: str = ""
    helo: str = ""  # defaults to host

    @property
    def helo_name(self) -> str:
        return self.helo or self.host


@dataclass(frozen=True, slots=True)
class DomainConfig:
    name: str
    dkim_selectors: tuple[str, ...] = ()
    #: IPs, or sender host names, that must pass SPF for this domain.
    senders: tuple[str, ...] = ()
    smtp: bool = True
    #: Google Postmaster Tools credentials (service-account or OAuth token JSON).
    postmaster_credentials_file: str = ""


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    #: Fraction of the interval by which each run is randomly delayed.
    jitter: float = 0.1
    #: A run still going after this long is cancelled and counts as failed.
    run_timeout: float = 120.0
    #: Runs in progress at once; the others wait their turn (not counted in run_timeout).
    max_concurrent_runs: int = 128


@dataclass(frozen=True, slots=True)
class ModuleConfig:
    """A /probe module: which checks run, and the settings a probed target gets."""

    name: str
    checks: tuple[str, ...]
    dkim_selectors: tuple[str, ...] = ()
    helo: str = ""
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    #: Domain suffixes and CIDRs that may be probed beyond the configured targets.
    allow: tuple[str, ...] = ()
    #: Per-client token bucket: sustained requests per second and burst size.
    rate: float = 10.0
    burst: int = 50


@dataclass(frozen=True, slots=True)
class Config:
    resolver: ResolverConfig = field(default_factory=ResolverConfig)
    dnsbl: DnsblConfig = field(default_factory=DnsblConfig)
    ptr: IntervalConfig = field(default_factory=lambda: IntervalConfig(300.0))
    spf: IntervalConfig = field(default_factory=IntervalConfig)
    dkim: IntervalConfig = field(default_factory=IntervalConfig)
    dmarc: IntervalConfig = field(default_factory=IntervalConfig)
    mx: IntervalConfig = field(default_factory=IntervalConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    mta_sts: MtaStsConfig = field(default_factory=MtaStsConfig)
    tlsrpt: IntervalConfig = field(default_factory=IntervalConfig)
    dnssec: IntervalConfig = field(default_factory=IntervalConfig)
    dane: IntervalConfig = field(default_factory=IntervalConfig)
    bimi: IntervalConfig = field(default_factory=IntervalConfig)
    postmaster: PostmasterConfig = field(default_factory=PostmasterConfig)
    snds: SndsConfig = field(default_factory=SndsConfig)
    senders: tuple[SenderConfig, ...] = ()
    domains: tuple[DomainConfig, ...] = ()
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    modules: tuple[ModuleConfig, ...] = ()
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    #: Where the config came from, for messages.
    source: str = "<config>"

    def interval_of(self, check: str, default: float = 3600.0) -> float:
        section = getattr(self, check, None)
        interval = getattr(section, "interval", None)
        return float(interval) if interval is not None else default


# --------------------------------------------------------------------------
# Strict decoding
# --------------------------------------------------------------------------


class _Decoder:
    """Walks the YAML tree, collecting every problem with its key path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, path: str, reason: str) -> None:
        where = f"{path}: " if path else ""
        self.problems.append(f"{self.source}: {where}{reason}")

    def mapping(self, value: object, path: str, allowed: Iterable[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        allowed_set = set(allowed)
        for key in value:
            if key not in allowed_set:
                hint = ", ".join(sorted(allowed_set))
                self.problem(_join(path, str(key)), f"unknown key (allowed here: {hint})")
        return {k: v for k, v in value.items() if k in allowed_set}

    def sequence(self, value: object, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"expected a list, got {type(value).__name__}")
            return []
        return value

    def convert(self, value: object, path: str, fn: Callable[[object], T], default: T) -> T:
        try:
            return fn(value)
        except (ValueError, TypeError) as exc:
            self.problem(path, str(exc))
            return default

    def integer(self, value: object, path: str, default: int, lo: int, hi: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, f"expected a whole number, got {value!r}")
            return default
        if not lo <= value <= hi:
            self.problem(path, f"must be between {lo} and {hi}, got {value}")
            return default
        return value

    def boolean(self, value: object, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(path, f"expected true or false, got {value!r}")
            return default
        return value

    def string(self, value: object, path: str, default: str = "") -> str:
        if value is None:
            return default
        if not isinstance(value, str):
            self.problem(path, f"expected a string, got {value!r}")
            return default
        return value

    def duration(self, value: object, path: str, default: float) -> float:
        if value is None:
            return default
        return self.convert(value, path, parse_duration, default)

    def ip_list(self, value: object, path: str) -> tuple[str, ...]:
        return tuple(
            self.convert(v, f"{path}[{i}]", canonical_ip, "")
            for i, v in enumerate(self.sequence(value, path))
        )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _network(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError(f"expected an address or network like 127.255.255.0/24, got {text!r}")
    return str(ipaddress.ip_network(text.strip(), strict=False))


def _decode_resolver(d: _Decoder, raw: object) -> ResolverConfig:
    m = d.mapping(raw, "resolver", ("nameservers", "port", "timeout", "attempts", "max_in_flight",
                                    "transport"))
    transport = d.string(m.get("transport"), "resolver.transport", "datagram")
    if transport not in ("datagram", "dnspython"):
        d.problem("resolver.transport", f"must be datagram or dnspython, got {transport!r}")
    return ResolverConfig(
        transport=transport,
        nameservers=d.ip_list(m.get("nameservers"), "resolver.nameservers"),
        port=d.integer(m.get("port"), "resolver.port", 53, 1, 65535),
        timeout=d.duration(m.get("timeout"), "resolver.timeout", 2.0),
        attempts=d.integer(m.get("attempts"), "resolver.attempts", 2, 1, 10),
        max_in_flight=d.integer(m.get("max_in_flight"), "resolver.max_in_flight", 256, 1, 65536),
    )


def _decode_zone(d: _Decoder, raw: object, path: str) -> ZoneConfig | None:
    if isinstance(raw, str):
        raw = {"zone": raw}
    m = d.mapping(raw, path, ("zone", "type", "nameservers", "port", "error_codes", "budget"))
    budget = d.mapping(m.get("budget"), _join(path, "budget"), ("per_second", "per_day"))
    per_second = budget.get("per_second", 0)
    if isinstance(per_second, bool) or not isinstance(per_second, int | float) or per_second < 0:
        d.problem(_join(path, "budget.per_second"),
                  f"must be a non-negative number, got {per_second!r}")
        per_second = 0
    per_day = d.integer(budget.get("per_day"), _join(path, "budget.per_day"), 0, 0, 10**12)
    zone = ""
    if "zone" not in m:
        d.problem(_join(path, "zone"), "required")
    else:
        zone = d.convert(m["zone"], _join(path, "zone"), valid_hostname, "")
    ztype = d.string(m.get("type"), _join(path, "type"), "ip")
    if ztype not in ("ip", "domain"):
        d.problem(_join(path, "type"), f"must be ip or domain, got {ztype!r}")
    codes = tuple(
        d.convert(v, f"{path}.error_codes[{i}]", _network, "")
        for i, v in enumerate(d.sequence(m.get("error_codes"), _join(path, "error_codes")))
    )
    nameservers = d.ip_list(m.get("nameservers"), _join(path, "nameservers"))
    port = d.integer(m.get("port"), _join(path, "port"), 53, 1, 65535)
    if not zone:
        return None
    return ZoneConfig(
        zone=zone, type=ztype, nameservers=nameservers, port=port, error_codes=codes,
        budget_per_second=float(per_second), budget_per_day=per_day,
    )


def _decode_dnsbl(d: _Decoder, raw: object) -> DnsblConfig:
    m = d.mapping(raw, "dnsbl", ("interval", "zones"))
    interval = d.duration(m.get("interval"), "dnsbl.interval", 300.0)
    if "zones" not in m or m["zones"] is None:
        return DnsblConfig(interval=interval, zones=(), builtin=True)
    zones: list[ZoneConfig] = []
    seen: set[str] = set()
    for i, z in enumerate(d.sequence(m["zones"], "dnsbl.zones")):
        zone = _decode_zone(d, z, f"dnsbl.zones[{i}]")
        if zone is None:
            continue
        if zone.zone in seen:
            d.problem(f"dnsbl.zones[{i}].zone", f"duplicate zone {zone.zone}")
        seen.add(zone.zone)
        zones.append(zone)
    return DnsblConfig(interval=interval, zones=tuple(zones), builtin=False)


def _decode_interval(d: _Decoder, raw: object, section: str, default: float) -> IntervalConfig:
    m = d.mapping(raw, section, ("interval",))
    return IntervalConfig(d.duration(m.get("interval"), f"{section}.interval", default))


def _decode_smtp(d: _Decoder, raw: object) -> SmtpConfig:
    m = d.mapping(raw, "smtp", ("interval", "port", "timeout", "helo"))
    helo = m.get("helo")
    return SmtpConfig(
        interval=d.duration(m.get("interval"), "smtp.interval", 3600.0),
        port=d.integer(m.get("port"), "smtp.port", 25, 1, 65535),
        timeout=d.duration(m.get("timeout"), "smtp.timeout", 10.0),
        helo=d.convert(helo, "smtp.helo", valid_hostname, "") if helo is not None else "",
    )


def _decode_tls(d: _Decoder, raw: object) -> TlsConfig:
    m = d.mapping(raw, "tls", ("ca_file",))
    ca_file = d.string(m.get("ca_file"), "tls.ca_file")
    if ca_file and not os.access(ca_file, os.R_OK):
        d.problem("tls.ca_file", f"cannot read {ca_file}")
    return TlsConfig(ca_file=ca_file)


def _readable_file(text: object) -> str:
    if not isinstance(text, str) or not text:
        raise ValueError(f"expected a file path, got {text!r}")
    if not os.path.isfile(text) or not os.access(text, os.R_OK):
        raise ValueError(f"cannot read file {text}")
    return text


def _https_url(text: object) -> str:
    if not isinstance(text, str) or not re.match(r"^https?://[^\s/]+", text):
        raise ValueError(f"expected an http(s) URL, got {text!r}")
    return text.rstrip("/")


def _decode_mta_sts(d: _Decoder, raw: object) -> MtaStsConfig:
    m = d.mapping(raw, "mta_sts", ("interval", "port", "timeout"))
    return MtaStsConfig(
        interval=d.duration(m.get("interval"), "mta_sts.interval", 3600.0),
        port=d.integer(m.get("port"), "mta_sts.port", 443, 1, 65535),
        timeout=d.duration(m.get("timeout"), "mta_sts.timeout", 10.0),
    )


def _decode_postmaster(d: _Decoder, raw: object) -> PostmasterConfig:
    m = d.mapping(raw, "postmaster", ("interval", "base_url", "token_url"))
    default = PostmasterConfig()
    interval = d.duration(m.get("interval"), "postmaster.interval", 3600.0)
    if interval < 3600.0:
        d.problem("postmaster.interval", "must be at least 1h: the data is daily")
    return PostmasterConfig(
        interval=interval,
        base_url=d.convert(m.get("base_url", default.base_url), "postmaster.base_url",
                           _https_url, default.base_url),
        token_url=d.convert(m.get("token_url", default.token_url), "postmaster.token_url",
                            _https_url, default.token_url),
    )


def _decode_snds(d: _Decoder, raw: object) -> SndsConfig:
    m = d.mapping(raw, "snds", ("key_file", "interval", "base_url"))
    default = SndsConfig()
    key_file = ""
    if m.get("key_file") is not None:
        key_file = d.convert(m["key_file"], "snds.key_file", _readable_file, "")
    interval = d.duration(m.get("interval"), "snds.interval", 3600.0)
    if interval < 3600.0:
        d.problem("snds.interval", "must be at least 1h: the data is daily")
    return SndsConfig(
        key_file=key_file,
        interval=interval,
        base_url=d.convert(m.get("base_url", default.base_url), "snds.base_url",
                           _https_url, default.base_url),
    )


def _decode_sender(d: _Decoder, raw: object, path: str) -> SenderConfig | None:
    if isinstance(raw, str):
        raw = {"ip": raw} if is_ip(raw.strip()) else {"host": raw}
    m = d.mapping(raw, path, ("host", "ip", "helo"))
    host = ip = ""
    if "host" in m:
        host = d.convert(m["host"], _join(path, "host"), valid_hostname, "")
    if "ip" in m:
        ip = d.convert(m["ip"], _join(path, "ip"), canonical_ip, "")
    if ("host" in m) == ("ip" in m):
        d.problem(path, "give exactly one of host or ip")
        return None
    helo = ""
    if m.get("helo") is not None:
        helo = d.convert(m["helo"], _join(path, "helo"), valid_hostname, "")
    return SenderConfig(host=host, ip=ip, helo=helo)


def _spf_sender(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError(f"expected an IP address or host name, got {text!r}")
    return canonical_ip(text) if is_ip(text.strip()) else valid_hostname(text)


def _selector(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a DKIM selector, got {text!r}")
    # Selectors may be dotted (s1.region): each part must be a DNS label.
    valid_hostname(text + ".invalid")
    return normalize_name(text)


def _decode_domain(d: _Decoder, raw: object, path: str) -> DomainConfig | None:
    if isinstance(raw, str):
        raw = {"name": raw}
    m = d.mapping(raw, path, ("name", "dkim_selectors", "senders", "smtp", "postmaster"))
    if "name" not in m:
        d.problem(_join(path, "name"), "required")
        return None
    name = d.convert(m["name"], _join(path, "name"), valid_hostname, "")
    sel_path = _join(path, "dkim_selectors")
    selectors = tuple(
        d.convert(v, f"{sel_path}[{i}]", _selector, "")
        for i, v in enumerate(d.sequence(m.get("dkim_selectors"), sel_path))
    )
    snd_path = _join(path, "senders")
    senders = tuple(
        d.convert(v, f"{snd_path}[{i}]", _spf_sender, "")
        for i, v in enumerate(d.sequence(m.get("senders"), snd_path))
    )
    pm = d.mapping(m.get("postmaster"), _join(path, "postmaster"), ("credentials_file",))
    credentials = ""
    if pm.get("credentials_file") is not None:
        credentials = d.convert(
            pm["credentials_file"], _join(path, "postmaster.credentials_file"), _readable_file, ""
        )
    return DomainConfig(
        name=name,
        postmaster_credentials_file=credentials,
        dkim_selectors=tuple(dict.fromkeys(selectors)),
        senders=tuple(dict.fromkeys(senders)),
        smtp=d.boolean(m.get("smtp"), _join(path, "smtp"), True),
    )


def _decode_scheduler(d: _Decoder, raw: object) -> SchedulerConfig:
    m = d.mapping(raw, "scheduler", ("jitter", "run_timeout", "max_concurrent_runs"))
    jitter = m.get("jitter", 0.1)
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
        d.problem("scheduler.jitter", f"must be a number from 0 to 1, got {jitter!r}")
        jitter = 0.1
    return SchedulerConfig(
        jitter=float(jitter),
        run_timeout=d.duration(m.get("run_timeout"), "scheduler.run_timeout", 120.0),
        max_concurrent_runs=d.integer(m.get("max_concurrent_runs"),
                                      "scheduler.max_concurrent_runs", 128, 1, 100000),
    )


#: Check names a module may name; the registry checks this list stays in step.
KNOWN_CHECKS = (
    "dnsbl", "ptr", "spf", "dkim", "dmarc", "mx", "smtp", "mta_sts", "tlsrpt", "dnssec",
    "dane", "bimi",
)


def _allow_entry(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a domain suffix or a CIDR, got {text!r}")
    value = text.strip()
    if "/" in value or is_ip(value):
        return str(ipaddress.ip_network(value, strict=False))
    return valid_hostname(value.lstrip("*."))


def _decode_modules(d: _Decoder, raw: object) -> tuple[ModuleConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        d.problem("modules", f"expected a mapping of module names, got {type(raw).__name__}")
        return ()
    modules = []
    for name, body in raw.items():
        path = f"modules.{name}"
        m = d.mapping(body, path, ("checks", "dkim_selectors", "helo", "timeout"))
        checks = []
        for i, c in enumerate(d.sequence(m.get("checks"), f"{path}.checks")):
            if c not in KNOWN_CHECKS:
                d.problem(f"{path}.checks[{i}]",
                          f"unknown check {c!r} (known: {', '.join(KNOWN_CHECKS)})")
            else:
                checks.append(c)
        if not m.get("checks"):
            d.problem(f"{path}.checks", "required: the checks this module runs")
        selectors = tuple(
            d.convert(v, f"{path}.dkim_selectors[{i}]", _selector, "")
            for i, v in enumerate(d.sequence(m.get("dkim_selectors"), f"{path}.dkim_selectors"))
        )
        helo = m.get("helo")
        modules.append(ModuleConfig(
            name=str(name), checks=tuple(checks), dkim_selectors=selectors,
            helo=d.convert(helo, f"{path}.helo", valid_hostname, "") if helo else "",
            timeout=d.duration(m.get("timeout"), f"{path}.timeout", 30.0),
        ))
    return tuple(modules)


def _decode_probe(d: _Decoder, raw: object) -> ProbeConfig:
    m = d.mapping(raw, "probe", ("allow", "rate", "burst"))
    allow = tuple(
        d.convert(v, f"probe.allow[{i}]", _allow_entry, "")
        for i, v in enumerate(d.sequence(m.get("allow"), "probe.allow"))
    )
    rate = m.get("rate", 10.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        d.problem("probe.rate", f"must be a positive number of requests per second, got {rate!r}")
        rate = 10.0
    return ProbeConfig(allow=allow, rate=float(rate),
                       burst=d.integer(m.get("burst"), "probe.burst", 50, 1, 100000))


TOP_LEVEL_KEYS = (
    "resolver", "dnsbl", "ptr", "spf", "dkim", "dmarc", "mx", "smtp", "tls",
    "senders", "domains", "scheduler", "mta_sts", "tlsrpt", "dnssec", "dane", "bimi",
    "postmaster", "snds", "modules", "probe",
)


def build_config(raw: object, source: str = "<config>") -> Config:
    """Decode a parsed YAML document into a Config, or raise ConfigError with every problem."""
    d = _Decoder(source)
    top = d.mapping(raw, "", TOP_LEVEL_KEYS)
    senders: list[SenderConfig] = []
    seen_senders: set[tuple[str, str]] = set()
    for i, s in enumerate(d.sequence(top.get("senders"), "senders")):
        sender = _decode_sender(d, s, f"senders[{i}]")
        if sender is None:
            continue
        ident = (sender.host, sender.ip)
        if ident in seen_senders:
            d.problem(f"senders[{i}]", f"duplicate sender {sender.host or sender.ip}")
        seen_senders.add(ident)
        senders.append(sender)
    domains: list[DomainConfig] = []
    seen_domains: set[str] = set()
    for i, raw_domain in enumerate(d.sequence(top.get("domains"), "domains")):
        domain = _decode_domain(d, raw_domain, f"domains[{i}]")
        if domain is None:
            continue
        if domain.name in seen_domains:
            d.problem(f"domains[{i}].name", f"duplicate domain {domain.name}")
        seen_domains.add(domain.name)
        domains.append(domain)
    config = Config(
        resolver=_decode_resolver(d, top.get("resolver")),
        dnsbl=_decode_dnsbl(d, top.get("dnsbl")),
        ptr=_decode_interval(d, top.get("ptr"), "ptr", 300.0),
        spf=_decode_interval(d, top.get("spf"), "spf", 3600.0),
        dkim=_decode_interval(d, top.get("dkim"), "dkim", 3600.0),
        dmarc=_decode_interval(d, top.get("dmarc"), "dmarc", 3600.0),
        mx=_decode_interval(d, top.get("mx"), "mx", 3600.0),
        smtp=_decode_smtp(d, top.get("smtp")),
        tls=_decode_tls(d, top.get("tls")),
        mta_sts=_decode_mta_sts(d, top.get("mta_sts")),
        tlsrpt=_decode_interval(d, top.get("tlsrpt"), "tlsrpt", 3600.0),
        dnssec=_decode_interval(d, top.get("dnssec"), "dnssec", 3600.0),
        dane=_decode_interval(d, top.get("dane"), "dane", 3600.0),
        bimi=_decode_interval(d, top.get("bimi"), "bimi", 3600.0),
        postmaster=_decode_postmaster(d, top.get("postmaster")),
        snds=_decode_snds(d, top.get("snds")),
        senders=tuple(senders),
        domains=tuple(domains),
        scheduler=_decode_scheduler(d, top.get("scheduler")),
        modules=_decode_modules(d, top.get("modules")),
        probe=_decode_probe(d, top.get("probe")),
        source=source,
    )
    if d.problems:
        raise ConfigError(d.problems)
    return config


def load_config(path: str) -> Config:
    """Read and decode a config file; every failure is a ConfigError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text: {exc}"]) from exc
    return parse_config_text(text, path)


def parse_config_text(text: str, source: str = "<config>") -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{source}: {where}invalid YAML: {reason}"]) from exc
    return build_config(raw, source)
