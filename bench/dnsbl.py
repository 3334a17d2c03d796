"""The provider-scale blocklist benchmark (issue 7): exporter vs. dnsperf vs. dnspython.

    python -m bench.dnsbl [--ips 10000 --zones 20 --concurrency 64,256,1024 --out bench/out]
    python -m bench.dnsbl --smoke      # 200 IPs × 3 zones, for CI: completes, prints ratios

Everything runs on loopback: rbldnsd serves the generated zones, Knot the
SPF zones, unbound recurses to them only (``tests.integration.stack``). For
each concurrency, cold (a freshly started unbound) and warm (its cache full
from the previous pass), it measures

1. the exporter's blocklist cycle, in a process of its own (bench.cycle_worker);
2. the ceiling: dnsperf on the same questions, same unbound, same concurrency;
3. the Python floor: the least a Python client does to ask them (bench.floor);
4. the baseline: dnspython's asyncresolver in a semaphore loop (bench.baseline),
   on a fixed-size random subset of the questions, reported as a rate;
5. the other Python peers the issue names, when installed (bench/requirements.txt):
   aiodns in the same loop on the same subset, and pydnsbl's checker on as many
   random IPs as make that many questions (bench.peers);

the first three ``--repeat`` times (default 3), one right after the other at
each concurrency, so that the verdicts can compare tries taken together;

then one more exporter cycle with senders added until ``/metrics`` holds at
least ``--render-series`` series (the 10,000 × 20 set makes about 242,000 of
the render target's 250,000), then the SPF deduplication claim, and prints a
table and PASS/MISS against the issue's targets. It reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import ipaddress
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.dnsperf import run_dnsperf, write_query_file
from bench.spf_dedup import measure_dedup
from bench.stack import (
    BENCH_NETWORK,
    BenchData,
    BenchStack,
    blocklists,
    generate,
    spf_zones,
    udp_receive_drops,
)
from tests.integration.stack import STACK_BINARIES, which

REPO = Path(__file__).resolve().parent.parent
#: Measured together at each concurrency and try (the slow baseline once, on its own).
PAIRED = ("exporter", "dnsperf", "floor")
SMOKE = {"ips": 200, "zones": 3, "concurrency": "64", "baseline_questions": 1000,
         "spf_domains": 100, "render_series": 2000}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dnsbl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ips", type=int, default=10_000, help="sending IPs (default %(default)s)")
    p.add_argument("--zones", type=int, default=20, help="blocklist zones (default %(default)s)")
    p.add_argument("--concurrency", default="64,256,1024",
                   help="comma-separated questions in flight (default %(default)s)")
    p.add_argument("--baseline-questions", type=int, default=20_000,
                   help="size of the random subset the slow baseline asks (default %(default)s)")
    p.add_argument("--spf-domains", type=int, default=1000,
                   help="domains sharing one SPF include (default %(default)s)")
    p.add_argument("--render-series", type=int, default=report.RENDER_SERIES,
                   help="after the tries, one more cycle (at the last concurrency listed) "
                        "with as many senders added as it takes for /metrics to hold at "
                        "least this many series; its first render is part of the render "
                        "verdict, whose target is for 250,000 (default %(default)s; 0: no "
                        "such cycle; small --ips and --zones make it a large cycle)")
    p.add_argument("--listed-share", type=float, default=0.01,
                   help="share of the IPs each zone lists (default %(default)s)")
    p.add_argument("--unbound-threads", type=int, default=1,
                   help="unbound num-threads (default %(default)s: one core each for "
                        "unbound and the client on a 2-core machine)")
    p.add_argument("--repeat", type=int, default=None,
                   help="measure the exporter, dnsperf and the Python floor this many times "
                        "per concurrency, one right after the other (default 3; --smoke: 1): "
                        "the throughput verdicts are the median of the tries' ratios, since "
                        "on a shared machine one unlucky minute otherwise decides a ratio")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    p.add_argument("--profile", action="store_true",
                   help="also run one extra warm cycle under cProfile (out/profile.txt); "
                        "it is not part of the numbers")
    p.add_argument("--report-only", type=Path, metavar="RESULTS_JSON",
                   help="measure nothing: print the table and verdicts of an earlier "
                        "results.json again (and redraw its PNG next to it)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny size for CI: " + ", ".join(f"{k}={v}" for k, v in SMOKE.items()))
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            if p.get_default(key) == getattr(args, key):
                setattr(args, key, value)
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    args.repeat = max(1, args.repeat if args.repeat is not None else 1 if args.smoke else 3)
    return args


def exporter_config(data: BenchData, port: int, concurrency: int) -> dict[str, Any]:
    """The config a provider would write: every IP a sender, every zone listed, one resolver."""
    return {
        "resolver": {"nameservers": ["127.0.0.1"], "port": port, "timeout": "2s",
                     "attempts": 3, "max_in_flight": concurrency},
        # One cycle only: the interval is far longer than the benchmark.
        "dnsbl": {"interval": "1d", "zones": [{"zone": z} for z in data.zones]},
        "senders": list(data.ips),
        # Every first run starts at once: the cycle's wall time is the work, not the jitter.
        "scheduler": {"jitter": 0, "run_timeout": "1h"},
    }


def extra_senders(data: BenchData, n: int) -> list[str]:
    """``n`` more sending IPs after the generated ones (listed nowhere: every answer NXDOMAIN)."""
    last = int(ipaddress.IPv4Address(data.ips[-1]))
    if last + n >= int(BENCH_NETWORK.broadcast_address):
        raise ValueError(f"{n:,} more senders do not fit in {BENCH_NETWORK}")
    return [str(ipaddress.IPv4Address(last + 1 + i)) for i in range(n)]


def measure_render_set(data: BenchData, port: int, concurrency: int, series: int,
                       want: int, work: Path) -> dict[str, Any] | None:
    """One cycle with senders added until ``/metrics`` holds at least ``want`` series,
    for the render target: the 10,000 × 20 set makes about 242,000, not 250,000.
    None when the tries' cycles already made that many.

    Each sender adds at least one series per zone (its listing gauge), so adding
    ``(want - series) / zones`` of them reaches ``want`` or overshoots a little; a
    shortfall (never seen) adds more and runs again. When the senders needed do not
    fit in the benchmark's address range (a few zones and a large ``want``), nothing
    is run and the result says why: the render verdict then falls short, visibly.
    """
    extra: list[str] = []
    result: dict[str, Any] = {"series": series}
    for _ in range(3):
        if result["series"] >= want:
            break
        more = -(-(want - result["series"]) // len(data.zones))
        try:
            extra = extra_senders(data, len(extra) + more)
        except ValueError as exc:
            return dict(result, skipped=f"no render set of {want:,} series: {exc}")
        config = exporter_config(data, port, concurrency)
        config["senders"] = [*data.ips, *extra]
        path = work / "exporter-render-set.json"
        path.write_text(json.dumps(config))
        result = dict(run_exporter(path), senders=len(config["senders"]))
    return result if "senders" in result else None


def _run_json(argv: list[str], what: str) -> dict[str, Any]:
    res = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                         timeout=3600, env=dict(os.environ, PYTHONPATH=str(REPO)))
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed ({res.returncode}):\n{res.stdout}\n{res.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def run_exporter(config_path: Path, profile: Path | None = None) -> dict[str, Any]:
    argv = ["-m", "bench.cycle_worker", str(config_path)]
    if profile is not None:
        argv += ["--profile", str(profile)]
    return _run_json(argv, "exporter cycle")


def run_floor(query_file: Path, port: int, concurrency: int) -> dict[str, Any]:
    return _run_json(["-m", "bench.floor", str(query_file), "--port", str(port),
                      "--concurrency", str(concurrency)], "python floor")


def run_baseline(names_path: Path, port: int, concurrency: int) -> dict[str, Any]:
    return _run_json(["-m", "bench.baseline", str(names_path), "--port", str(port),
                      "--concurrency", str(concurrency)], "baseline")


def run_peer(peer: str, items_path: Path, port: int, concurrency: int,
             zones: tuple[str, ...]) -> dict[str, Any]:
    return _run_json(["-m", "bench.peers", peer, str(items_path), "--zones", ",".join(zones),
                      "--port", str(port), "--concurrency", str(concurrency)], peer)


def installed_peers() -> list[str]:
    """The peers of ``bench.peers`` importable here; the rest are left out, and said so."""
    return [peer for peer in report.PEERS[1:] if importlib.util.find_spec(peer) is not None]


def _say(text: str) -> None:
    print(text, flush=True)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "cpus": str(os.cpu_count()),
           "machine": platform.machine()}
    for package in ("aiodns", "pycares", "pydnsbl"):  # the Python peers, when installed
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    for name, flag in (("unbound", "-V"), ("dnsperf", "-h"), ("rbldnsd", "-h")):
        binary = which(name)
        if binary is None:
            continue
        res = subprocess.run([binary, flag], capture_output=True, text=True, timeout=10)
        text = res.stdout + res.stderr
        line = next((ln for ln in text.splitlines() if "ersion" in ln), "")
        out[name] = line.strip()
    return out


#: What is kept of every try beside its rate: the tool's questions, the resolver's CPU
#: for them and the datagrams dropped meanwhile, so that the report can say what
#: answering each try cost the resolver.
_PER_TRY = ("queries_sent", "sent", "unbound_cpu_seconds", "rbldnsd_cpu_seconds",
            "udp_receive_drops")


def _best_attempt(tried: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest try without failed runs (the fastest of all when every one failed),
    with every try's rate, failed runs, questions and resolver CPU, in the order tried,
    kept beside it."""
    best = max(tried, key=lambda r: (r.get("failed_runs", 0) == 0, r["queries_per_second"]))
    if len(tried) == 1:
        return best
    return dict(best, attempts=[r["queries_per_second"] for r in tried],
                attempts_failed_runs=[r.get("failed_runs", 0) for r in tried],
                **{f"attempts_{key}": [r[key] for r in tried]
                   for key in _PER_TRY if all(key in r for r in tried)})


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = generate(args.ips, args.zones, args.listed_share, args.seed)
    names = data.query_names()
    rng = random.Random(args.seed)
    subset = names if len(names) <= args.baseline_questions else [
        names[i] for i in sorted(rng.sample(range(len(names)), args.baseline_questions))]
    query_file, subset_file = work / "queries.txt", work / "baseline-names.txt"
    write_query_file(query_file, names)
    subset_file.write_text("\n".join(subset) + "\n")
    # pydnsbl asks every zone for each IP: as many IPs as make the subset's size.
    peer_ips = sorted(rng.sample(data.ips, min(len(data.ips), max(
        1, len(subset) // len(data.zones)))), key=ipaddress.IPv4Address)
    peer_listed = sum(ip in data.listed[zone] for ip in peer_ips for zone in data.zones)
    ips_file = work / "peer-ips.txt"
    ips_file.write_text("\n".join(peer_ips) + "\n")
    peers = installed_peers()
    _say(f"{len(data.ips):,} IPs × {len(data.zones)} zones = {len(names):,} questions "
         f"({data.listings():,} listings); baseline on {len(subset):,}; "
         f"concurrency {args.concurrency}"
         + (f"; {args.repeat} tries of exporter, dnsperf and floor together"
            if args.repeat > 1 else ""))
    stack = BenchStack(work / "stack", spf_zones(args.spf_domains), blocklists(data),
                       unbound_threads=args.unbound_threads)
    load_before = os.getloadavg()
    _say(f"load average before: {load_before[0]:.2f} (other processes compete for the CPUs: "
         "numbers are only comparable within one run)")
    stack.start()
    try:
        configs = {}
        for conc in args.concurrency:
            configs[conc] = work / f"exporter-{conc}.json"
            configs[conc].write_text(json.dumps(exporter_config(data, stack.resolver_port, conc)))
        tried: dict[tuple[int, str, str], list[dict[str, Any]]] = {}

        def measure_cell(conc: int, tool: str) -> None:
            stack.restart_unbound()
            for phase in report.PHASES:  # cold on a fresh unbound, then warm on its cache
                daemons, drops = stack.daemon_cpu_seconds(), udp_receive_drops()
                if tool == "exporter":
                    result = run_exporter(configs[conc])
                elif tool == "dnsperf":
                    result = run_dnsperf(query_file, stack.resolver_port, conc)
                elif tool == "floor":
                    result = run_floor(query_file, stack.resolver_port, conc)
                elif tool == "aiodns":
                    result = run_peer(tool, subset_file, stack.resolver_port, conc, data.zones)
                elif tool == "pydnsbl":
                    result = run_peer(tool, ips_file, stack.resolver_port, conc, data.zones)
                else:
                    result = run_baseline(subset_file, stack.resolver_port, conc)
                spent, dropped = stack.daemon_cpu_seconds(), udp_receive_drops()
                if drops is not None and dropped is not None:
                    result["udp_receive_drops"] = dropped - drops
                result.update({f"{name}_cpu_seconds": spent[name] - daemons[name]
                               for name in spent if name in daemons})
                tried.setdefault((conc, tool, phase), []).append(result)
                _say(f"  c={conc:<5} {tool:<9} {phase}: "
                     f"{result['queries_per_second']:>10,.0f} q/s "
                     f"in {result['wall_seconds']:.2f} s"
                     + (f", {result['failed_runs']} failed runs" if tool == "exporter" else ""))

        # The ratio's sides are measured together, one right after the other and in
        # rotating order, so that a busy minute on a shared machine hits every try of
        # the group rather than deciding the ratio: the verdicts use the groups.
        for attempt in range(args.repeat):
            if args.repeat > 1:
                _say(f"try {attempt + 1} of {args.repeat}")
            for n, conc in enumerate(args.concurrency):
                shift = (attempt + n) % len(PAIRED)
                for tool in PAIRED[shift:] + PAIRED[:shift]:
                    measure_cell(conc, tool)
        missing = sorted(set(report.PEERS[1:]) - set(peers))
        if missing:
            _say(f"not installed, not measured: {', '.join(missing)} "
                 "(pip install -r bench/requirements.txt)")
        for tool in ("baseline", *peers):  # the slow Python peers: once each
            for conc in args.concurrency:
                measure_cell(conc, tool)
        runs = [{"concurrency": conc,
                 **{tool: {phase: _best_attempt(tried[conc, tool, phase])
                           for phase in report.PHASES}
                    for tool in (*PAIRED, "baseline", *peers)}}
                for conc in args.concurrency]
        render_set = None
        if args.render_series:
            series = max(r["exporter"][phase]["series"] for r in runs for phase in report.PHASES)
            render_set = measure_render_set(data, stack.resolver_port, args.concurrency[-1],
                                            series, args.render_series, work)
            if render_set is not None and "skipped" in render_set:
                _say(render_set["skipped"])
            elif render_set is not None:
                _say(f"render set: {render_set['senders']:,} senders × {len(data.zones)} zones, "
                     f"{render_set['series']:,} series, first /metrics render "
                     f"{render_set['render_first_seconds']:.3f} s, second "
                     f"{render_set['render_second_seconds']:.3f} s, peak RSS "
                     f"{render_set['peak_rss_mb']:.0f} MB")
        profile_path = None
        if args.profile:
            profile_path = args.out / "profile.txt"
            conc = args.concurrency[-1]
            run_exporter(work / f"exporter-{conc}.json", profile_path)
            _say(f"cProfile of a warm cycle at c={conc}: {profile_path}")
        dedup = asyncio.run(measure_dedup(stack, args.spf_domains))
        _say(f"SPF deduplication: {dedup['domains']} domains, include asked "
             f"{dedup['include_asked']}x, sent {dedup['include_sent']}x; unbound received "
             f"{dedup['unbound_queries']:.0f} questions for {dedup['questions_sent']} sent")
    finally:
        stack.stop()
    return {
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "questions": len(names),
        "baseline_questions": len(subset),
        "peer_ips": len(peer_ips),
        "peer_listings": peer_listed,
        "listings": data.listings(),
        "versions": _versions(),
        "unbound_config": stack.unbound_config_text(),
        "runs": runs,
        "dedup": dedup,
        "render_set": render_set,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "profile": str(profile_path) if profile_path else None,
    }


def print_report(results: dict[str, Any], out: Path) -> None:
    """Verdicts, PNG, results.json and the table, from the measured numbers."""
    verdicts = report.verdicts(results["runs"], results["dedup"], results.get("render_set"))
    results["verdicts"] = verdicts
    params = results["params"]
    title = (f"{params['ips']:,} IPs × {params['zones']} zones, rbldnsd behind unbound on "
             f"loopback ({results['versions'].get('cpus', '?')} CPUs)")
    why_not = report.plot(results["runs"], out / "throughput.png", title)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _say("")
    _say(report.table(results["runs"]))
    _say("")
    _say("exporter/ceiling = exporter q/s ÷ dnsperf q/s; exporter/baseline = exporter q/s ÷ "
         f"dnspython asyncresolver q/s (on a {results['baseline_questions']:,}-question subset)")
    _say("Targets (issue 7; reported, not asserted):")
    _say(report.verdict_text(verdicts))
    resolver = report.resolver_text(results["runs"])
    if resolver:
        _say("What answering each tool cost unbound, the bottleneck when it is cold, and "
             "the datagrams the kernel dropped meanwhile (median over tries and "
             "concurrencies, range in brackets)")
        _say(resolver)
    peers = report.peers_text(results["runs"])
    if peers:
        _say(f"The Python peers issue 7 names, best rate over concurrency (on "
             f"{results['baseline_questions']:,}-question subsets; pydnsbl on "
             f"{results.get('peer_ips', 0):,} IPs × every zone)")
        _say(peers)
    floor = report.floor_text(results["runs"])
    if floor:
        _say("For reference, not a target: the least a Python client does (bench/floor.py), "
             "against dnsperf")
        _say(floor)
    _say(f"wrote {out / 'results.json'}"
         + (f"; {why_not}" if why_not else f" and {out / 'throughput.png'}"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.report_only is not None:
        print_report(json.loads(args.report_only.read_text()), args.report_only.parent)
        return 0
    missing = [b for b in (*STACK_BINARIES, "dnsperf") if which(b) is None]
    if missing:
        print(f"missing binaries: {', '.join(missing)} (Debian packages knot rbldnsd "
              "unbound dnsperf)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-dnsbl-"))
    started = time.time()
    try:
        results = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["elapsed_seconds"] = time.time() - started
    print_report(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
