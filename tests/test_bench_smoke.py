"""The provider-scale benchmark runs end to end at a tiny size (CI).

No timing assertions: a loaded CI machine may be slow. What must hold at any
speed: the harness completes, prints the ratios and the verdicts, writes its
results and its plot, the exporter's cycle answered every question without a
failed run, the Python peers got the same answers as dnspython, the render set
reached its series count, and the SPF include was sent once for every domain
that asked for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.stack import STACK_BINARIES, require_binaries

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def test_bench_smoke_completes_and_prints_ratios(tmp_path: Path) -> None:
    require_binaries(*STACK_BINARIES, "dnsperf")
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "bench.dnsbl", "--smoke", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    text = res.stdout
    for heading in ("exporter/ceiling", "exporter/baseline", "Targets (issue 7",
                    "its CPU per question: dnsperf ", "The Python peers issue 7 names",
                    "cycle ahead of every Python peer measured (dnspython, aiodns, pydnsbl)"):
        assert heading in text, text
    assert "PASS" in text or "MISS" in text
    # The plot of every tool's throughput (matplotlib is in the test extra).
    assert (out / "throughput.png").read_bytes().startswith(b"\x89PNG"), text

    results = json.loads((out / "results.json").read_text())
    ips, zones = results["params"]["ips"], results["params"]["zones"]
    assert (ips, zones) == (200, 3)
    assert results["questions"] == ips * zones + 2 * zones
    for run in results["runs"]:
        for phase in ("cold", "warm"):
            cycle = run["exporter"][phase]
            assert cycle["failed_runs"] == 0, cycle["failure_examples"]
            assert cycle["targets"] == ips + zones
            # Every IP × zone question went out once; health names and TXT add a few.
            assert ips * zones <= cycle["queries_sent"] <= results["questions"] + ips * zones
            assert cycle["outcomes"].get("timeout", 0) == 0
            # listed + not-listed series for every IP × zone, at least.
            assert cycle["series"] >= ips * zones
            assert cycle["queries_per_second"] > 0
            perf = run["dnsperf"][phase]
            assert perf["queries_completed"] == results["questions"]
            floor = run["floor"][phase]  # the Python floor asked every question too
            assert floor["answered"] == results["questions"] and floor["lost"] == 0
            # What answering each tool cost unbound (from /proc: in clock ticks, so a
            # small warm run may cost none).
            spent = [run[tool][phase]["unbound_cpu_seconds"]
                     for tool in ("exporter", "dnsperf", "floor")]
            assert min(spent) >= 0 and (phase == "warm" or sum(spent) > 0), (phase, spent)
            assert run["exporter"][phase]["udp_receive_drops"] >= 0
            base = run["baseline"][phase]
            assert base["questions"] == results["baseline_questions"]
            assert sum(base["outcomes"].values()) == base["questions"]
            # The other Python peers (the test extra installs them) got the same answers:
            # aiodns on the baseline's names, pydnsbl on IPs × every zone.
            aiodns, pydnsbl = run["aiodns"][phase], run["pydnsbl"][phase]
            assert aiodns["outcomes"] == base["outcomes"], (aiodns, base)
            assert pydnsbl["questions"] == results["peer_ips"] * zones
            assert pydnsbl["outcomes"]["error"] == 0, pydnsbl
            # Listed answers come only from the bench's rbldnsd: they show it was asked.
            assert pydnsbl["outcomes"]["ok"] == results["peer_listings"] > 0, pydnsbl
            assert sum(pydnsbl["outcomes"].values()) == pydnsbl["questions"]
    dedup = results["dedup"]
    assert dedup["runs_successful"] == dedup["domains"] == dedup["spf_valid"]
    assert dedup["include_asked"] == dedup["domains"]
    assert dedup["include_sent"] == 1
    # unbound saw each domain's own TXT plus the include once, not once per domain
    # (a retransmission on a loaded machine may add one or two).
    assert dedup["domains"] + 1 <= dedup["unbound_queries"] < 2 * dedup["domains"]
    assert {v["target"].split(" ")[0] for v in results["verdicts"]} >= {"cycle", "peak"}
    # The render verdict's larger cycle: senders added until /metrics held enough series.
    render_set = results["render_set"]
    assert render_set["series"] >= results["params"]["render_series"] > cycle["series"]
    assert render_set["senders"] > ips and render_set["failed_runs"] == 0
    assert f"{render_set['senders']:,} senders" in text
