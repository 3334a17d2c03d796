"""The benchmark's DNS servers and data: the integration stack, tuned for volume.

The integration tests' :class:`DnsStack` keeps every TTL at 5 s so a rewritten
zone shows quickly; a benchmark needs the opposite: a warm unbound must still
hold all 200,000 answers when the next cycle starts, so TTLs and unbound's
caches are raised here. Everything else (loopback only, no recursion past
the stub zones, ``do-not-query-address`` for every non-loopback network) is
the integration stack's own configuration, unchanged.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.integration.stack import Blocklist, DnsStack, Zone

#: RFC 2544 benchmarking range: the generated sending IPs. Data only, never contacted.
BENCH_NETWORK = ipaddress.ip_network("198.18.0.0/15")
BENCH_DOMAIN = "bench.test"
PROVIDER_INCLUDE = "_spf.provider.test"
#: Long enough that nothing expires between the cold and the warm cycle.
BENCH_TTL = 3600

#: unbound settings for volume; each replaces the integration stack's line of that name.
_UNBOUND_OVERRIDES = {
    "cache-max-ttl": str(BENCH_TTL),
    "cache-max-negative-ttl": str(BENCH_TTL),
    # 200,000 answers (mostly NXDOMAIN) must fit: the defaults (4 MB) hold ~10,000.
    "msg-cache-size": "256m",
    "rrset-cache-size": "512m",
    # 1,024 questions in flight from one client must not overflow the request list.
    "num-queries-per-thread": "4096",
    "outgoing-range": "8192",
    "so-rcvbuf": "8m",
    "so-sndbuf": "8m",
}


@dataclass(frozen=True)
class BenchData:
    """The generated world: sending IPs, zones and who is listed where."""

    ips: tuple[str, ...]
    zones: tuple[str, ...]
    listed: dict[str, frozenset[str]]

    def query_names(self) -> list[str]:
        """Every IP × zone A question, IP-major (the exporter's order), then the health names."""
        names = [f"{_reversed(ip)}.{zone}" for ip in self.ips for zone in self.zones]
        for zone in self.zones:
            names += [f"2.0.0.127.{zone}", f"1.0.0.127.{zone}"]
        return names

    def listings(self) -> int:
        return sum(len(v) for v in self.listed.values())


def _reversed(ip: str) -> str:
    return ".".join(reversed(ip.split(".")))


def generate(n_ips: int, n_zones: int, listed_share: float = 0.01, seed: int = 7) -> BenchData:
    """N IPs from 198.18.0.0/15 × M zones ``z1.bench.test`` …, each listing ~1 % of the IPs."""
    if not 0 < n_ips <= BENCH_NETWORK.num_addresses - 2:
        raise ValueError(f"--ips must be 1..{BENCH_NETWORK.num_addresses - 2}")
    rng = random.Random(seed)
    base = int(BENCH_NETWORK.network_address) + 1
    ips = tuple(str(ipaddress.IPv4Address(base + i)) for i in range(n_ips))
    zones = tuple(f"z{i}.{BENCH_DOMAIN}" for i in range(1, n_zones + 1))
    per_zone = max(1, round(n_ips * listed_share))
    listed = {z: frozenset(rng.sample(ips, min(per_zone, n_ips))) for z in zones}
    return BenchData(ips, zones, listed)


def blocklists(data: BenchData) -> list[Blocklist]:
    out = []
    for zone in data.zones:
        lines = [
            # Our own $SOA/$NS: the stack's default would give negative answers a 5 s TTL.
            f"$SOA {BENCH_TTL} localhost. hostmaster.{zone}. 1 60 60 600 {BENCH_TTL}",
            f"$NS {BENCH_TTL} localhost.",
            ":127.0.0.2:Listed by the benchmark",
            "127.0.0.2",  # RFC 5782 test entry: the zone-health check needs it listed
            *sorted(data.listed[zone], key=ipaddress.IPv4Address),
        ]
        out.append(Blocklist(zone, [("ip4set", "\n".join(lines) + "\n")]))
    return out


def spf_zones(n_domains: int) -> list[Zone]:
    """``d{i}.bench.test`` all including the one provider record (the deduplication claim)."""
    body = [f"$TTL {BENCH_TTL}"]
    body += [f'd{i} TXT "v=spf1 include:{PROVIDER_INCLUDE} -all"' for i in range(n_domains)]
    provider = [f"$TTL {BENCH_TTL}", '_spf TXT "v=spf1 ip4:192.0.2.0/24 -all"']
    return [Zone(BENCH_DOMAIN, "\n".join(body) + "\n"),
            Zone("provider.test", "\n".join(provider) + "\n")]


def udp_receive_drops() -> int | None:
    """Datagrams the kernel has dropped for a full receive buffer so far, machine-wide
    (``RcvbufErrors`` in ``/proc/net/snmp``); None without ``/proc``.

    On the bench stack such a drop is nearly always a question unbound forwarded to
    rbldnsd (whose buffer is a fixed 208 KB): unbound asks again after its timeout,
    and the run waits that long for the answer.
    """
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
                 if line.startswith("Udp:")]
    except OSError:
        return None
    if len(lines) < 2 or "RcvbufErrors" not in lines[0]:
        return None
    return int(lines[1][lines[0].index("RcvbufErrors")])


class BenchStack(DnsStack):
    """The integration DnsStack with long TTLs, large caches and a restartable unbound."""

    def __init__(self, workdir: Path, zones: Sequence[Zone], bls: Sequence[Blocklist],
                 unbound_threads: int = 1) -> None:
        super().__init__(workdir, zones=zones, blocklists=bls)
        self.unbound_threads = unbound_threads

    def _unbound_config(self) -> str:
        overrides = dict(_UNBOUND_OVERRIDES, **{"num-threads": str(self.unbound_threads)})
        lines = super()._unbound_config().splitlines()
        seen: set[str] = set()
        for i, line in enumerate(lines):
            m = re.match(r"^(\s+)([a-z-]+):", line)
            if m and m.group(2) in overrides and m.group(2) not in seen:
                lines[i] = f"{m.group(1)}{m.group(2)}: {overrides[m.group(2)]}"
                seen.add(m.group(2))
        at = lines.index("server:") + 1
        lines[at:at] = [f"    {k}: {v}" for k, v in overrides.items() if k not in seen]
        return "\n".join(lines) + "\n"

    def _rbldnsd_argv(self) -> list[str]:
        argv = super()._rbldnsd_argv()
        argv[argv.index("-t") + 1] = str(BENCH_TTL)
        return argv

    def restart_unbound(self) -> None:
        """A cold resolver: a new unbound process with empty caches."""
        if self._unbound is not None:
            self._unbound.stop()
        self._start_unbound()

    def daemon_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user and system) unbound and rbldnsd have used so far, by name.

        Read from ``/proc``; a daemon not running, or a system without ``/proc``, is
        left out. The difference across a tool's run is what answering it cost the
        resolver: on a machine whose cores the tool shares, that cost is its throughput.
        """
        out: dict[str, float] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for name, daemon in (("unbound", self._unbound), ("rbldnsd", self._rbldnsd)):
            if daemon is None or daemon.proc is None:
                continue
            try:
                stat = Path(f"/proc/{daemon.proc.pid}/stat").read_text()
            except OSError:
                continue
            # The fields after the command name, which is in parentheses and may hold spaces.
            fields = stat.rpartition(")")[2].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        return out

    def unbound_stats(self) -> dict[str, float]:
        """``unbound-control stats_noreset`` as numbers (total.num.queries, ...)."""
        out: dict[str, float] = {}
        for line in self.unbound_control("stats_noreset").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                try:
                    out[key.strip()] = float(value)
                except ValueError:
                    continue
        return out

    def unbound_config_text(self) -> str:
        return self._unbound_config()
