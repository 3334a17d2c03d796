"""Soak: the exporter under reloads and scrapes for minutes, memory watched.

    python -m bench.soak --minutes 5 --targets 2000

Runs ``python -m exporter`` on a DnsStack (Knot, rbldnsd, unbound on loopback)
with many senders and domains, rewrites its config and POSTs /-/reload every
few seconds (a slice of the targets rotates out and back in each time),
scrapes /metrics every second, and samples the exporter's RSS from
/proc/<pid>/status. Prints a table, writes bench/out/soak.json, and exits 1
when a scrape or a reload failed or the exporter died: the pass mark is zero.

Not in CI at this size; tests/test_soak_smoke.py runs a 20-second one.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.integration.exporter_proc import ExporterProcess
from tests.integration.stack import STACK_BINARIES, Blocklist, DnsStack, Zone, which

OUT = Path(__file__).resolve().parent / "out" / "soak.json"
#: Share of the targets that leave and come back with each reload.
ROTATE = 0.1


@dataclass
class Sample:
    elapsed: float
    rss_kib: int
    scrape_ms: float
    scrape_ok: bool
    series: int
    reloads: int
    reload_failures: int


@dataclass
class Report:
    seconds: float
    targets: int
    reload_every: float
    samples: list[Sample] = field(default_factory=list)
    failed_scrapes: int = 0
    reloads: int = 0
    failed_reloads: int = 0
    exporter_alive: bool = True
    completed: bool = False
    rss_start_kib: int = 0
    rss_end_kib: int = 0
    rss_max_kib: int = 0
    scrape_p50_ms: float = 0.0
    scrape_max_ms: float = 0.0
    errors: list[str] = field(default_factory=list)


def sender_ips(count: int) -> list[str]:
    """Documentation addresses only (RFC 5737 / RFC 3849): data, never contacted."""
    v4 = [str(ip) for ip in ipaddress.ip_network("192.0.2.0/24").hosts()]
    v4 += [str(ip) for ip in ipaddress.ip_network("198.51.100.0/24").hosts()]
    v4 += [str(ip) for ip in ipaddress.ip_network("203.0.113.0/24").hosts()]
    ips = v4[:count]
    base = int(ipaddress.ip_address("2001:db8::"))
    ips += [str(ipaddress.ip_address(base + i + 1)) for i in range(count - len(ips))]
    return ips


def build_stack(workdir: Path, domains: list[str], ips: list[str]) -> DnsStack:
    listed = "\n".join(ip for ip in ips[::7] if ":" not in ip)
    listed6 = "\n".join(ip for ip in ips[::7] if ":" in ip)
    datasets = [("ip4set", f":127.0.0.2:Soak listing\n127.0.0.2\n{listed}\n"),
                ("ip6trie", f":127.0.0.2:Soak listing\n{listed6 or '2001:db8:ffff::1'}\n")]
    records = ['@ TXT "v=spf1 -all"']
    for d in domains:
        label = d.removesuffix(".soak.test")
        records.append(f'{label} TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.soak.test -all"')
        records.append(f'_dmarc.{label} TXT "v=DMARC1; p=reject; rua=mailto:r@soak.test"')
        records.append(f"{label} MX 10 mx.soak.test.")
    records += ['_spf TXT "v=spf1 ip4:198.51.100.0/24 -all"', "mx A 192.0.2.25"]
    return DnsStack(workdir / "stack", zones=[Zone("soak.test", "\n".join(records) + "\n")],
                    blocklists=[Blocklist("soak.bl.test", datasets)])


def config_text(stack: DnsStack, ips: list[str], domains: list[str], round_no: int) -> str:
    """The config of reload ``round_no``: a rotating slice of the targets is left out."""
    def keep(items: list[str]) -> list[str]:
        n = len(items)
        out = max(1, int(n * ROTATE)) if n > 1 else 0
        start = (round_no * out) % n if n else 0
        gone = {(start + i) % n for i in range(out)} if round_no % 2 else set()
        return [x for i, x in enumerate(items) if i not in gone]

    senders = "".join(f"  - ip: '{ip}'\n" for ip in keep(ips))
    doms = "".join(f"  - {{name: {d}, smtp: false}}\n" for d in keep(domains))
    return f"""\
resolver:
  nameservers: ["127.0.0.1"]
  port: {stack.resolver_port}
  timeout: 1s
  attempts: 2
dnsbl:
  interval: 20s
  zones: [{{zone: soak.bl.test}}]
ptr: {{interval: 30s}}
spf: {{interval: 30s}}
dmarc: {{interval: 30s}}
mx: {{interval: 30s}}
dkim: {{interval: 1h}}
scheduler: {{jitter: 0.5}}
senders:
{senders or "  []"}
domains:
{doms or "  []"}"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def scrape(url: str) -> tuple[bool, float, int]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            body = resp.read()
            ok = resp.status == 200
    except (OSError, urllib.error.HTTPError):
        return False, (time.perf_counter() - started) * 1000, 0
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return ok, (time.perf_counter() - started) * 1000, series


def post_reload(url: str) -> bool:
    req = urllib.request.Request(url + "/-/reload", method="POST", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False


def run(seconds: float, targets: int, reload_every: float, out: Path,
        quiet: bool = False, domain_share: float = 0.25) -> Report:
    report = Report(seconds=seconds, targets=targets, reload_every=reload_every)
    n_domains = min(targets - 1, max(1, round(targets * domain_share)))
    ips = sender_ips(targets - n_domains)
    domains = [f"d{i}.soak.test" for i in range(n_domains)]
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = Path(tmp)
        stack = build_stack(workdir, domains, ips)
        stack.start()
        proc = ExporterProcess(config_text(stack, ips, domains, 0), workdir / "exporter",
                               ["--log.level", "warn"])
        try:
            proc.start(timeout=max(60.0, targets / 20))
            assert proc.proc is not None
            pid = proc.proc.pid
            report.rss_start_kib = rss_kib(pid)
            if not quiet:
                print(f"soak: {len(ips)} senders, {len(domains)} domains, "
                      f"{seconds:g}s, reload every {reload_every:g}s")
                print(f"{'elapsed':>8} {'rss MiB':>8} {'scrape ms':>10} {'series':>8} "
                      f"{'reloads':>8} {'failed':>7}")
            started = time.monotonic()
            next_reload = started + reload_every
            round_no = 0
            last_print = -10.0
            while (now := time.monotonic()) - started < seconds:
                if not proc.running():
                    report.exporter_alive = False
                    report.errors.append("exporter exited")
                    break
                if now >= next_reload:
                    round_no += 1
                    proc.config_path.write_text(config_text(stack, ips, domains, round_no))
                    report.reloads += 1
                    if not post_reload(proc.url):
                        report.failed_reloads += 1
                    next_reload += reload_every
                ok, ms, series = scrape(proc.url)
                if not ok:
                    report.failed_scrapes += 1
                elapsed = time.monotonic() - started
                sample = Sample(round(elapsed, 2), rss_kib(pid), round(ms, 1), ok, series,
                                report.reloads, report.failed_scrapes)
                report.samples.append(sample)
                if not quiet and elapsed - last_print >= 10:
                    last_print = elapsed
                    print(f"{elapsed:8.0f} {sample.rss_kib / 1024:8.1f} {ms:10.1f} "
                          f"{series:8d} {report.reloads:8d} {report.failed_scrapes:7d}",
                          flush=True)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
            else:
                report.completed = True
            report.exporter_alive = report.exporter_alive and proc.running()
        finally:
            if proc.proc is not None:
                log_tail = proc.log[-4000:]
                proc.kill()
                if not report.completed and log_tail:
                    report.errors.append(log_tail)
            stack.stop()
    rss = [s.rss_kib for s in report.samples]
    times = [s.scrape_ms for s in report.samples if s.scrape_ok]
    if rss:
        report.rss_end_kib, report.rss_max_kib = rss[-1], max(rss)
    if times:
        report.scrape_p50_ms = round(statistics.median(times), 1)
        report.scrape_max_ms = round(max(times), 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(report), indent=1))
    if not quiet:
        print(f"\nRSS start {report.rss_start_kib / 1024:.1f} MiB, end "
              f"{report.rss_end_kib / 1024:.1f} MiB, max {report.rss_max_kib / 1024:.1f} MiB; "
              f"scrape p50 {report.scrape_p50_ms} ms, max {report.scrape_max_ms} ms")
        print(f"scrapes {len(report.samples)}, failed {report.failed_scrapes}; reloads "
              f"{report.reloads}, failed {report.failed_reloads}; completed {report.completed}")
        print(f"wrote {out}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    length = p.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long (default 5)")
    length.add_argument("--seconds", type=float, help="how long, in seconds")
    p.add_argument("--targets", type=int, default=2000, help="senders + domains (default 2000)")
    p.add_argument("--reload-every", type=float, default=5.0,
                   help="seconds between config rewrites + reloads (default 5)")
    p.add_argument("--domain-share", type=float, default=0.25,
                   help="share of the targets that are domains, the rest sending IPs "
                        "(default 0.25)")
    p.add_argument("--out", type=Path, default=OUT, help=f"JSON report (default {OUT})")
    args = p.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (args.minutes or 5.0) * 60
    missing = [b for b in STACK_BINARIES if which(b) is None]
    if missing:
        print(f"soak needs {', '.join(missing)} (scripts/install-system-deps.sh)", file=sys.stderr)
        return 2
    if args.targets < 2:
        p.error("--targets must be at least 2")
    if not 0 < args.domain_share < 1:
        p.error("--domain-share must be between 0 and 1")
    report = run(seconds, args.targets, args.reload_every, args.out,
                 domain_share=args.domain_share)
    ok = (report.completed and report.exporter_alive and report.failed_scrapes == 0
          and report.failed_reloads == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
