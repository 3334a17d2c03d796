"""The benchmark's verdicts: paired tries, not the luckiest try of each side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.dnsbl import _best_attempt, extra_senders, measure_render_set
from bench.stack import generate


def _cell(rates: list[float], failed: list[int] | None = None) -> dict[str, Any]:
    failed = failed or [0] * len(rates)
    best = max(range(len(rates)), key=lambda k: (failed[k] == 0, rates[k]))
    cell: dict[str, Any] = {
        "queries_per_second": rates[best], "failed_runs": failed[best], "cpu_seconds": 1.0,
        "wall_seconds": 1.0, "peak_rss_mb": 100.0, "render_first_seconds": 0.1,
        "render_second_seconds": 0.1, "series": 300_000,
    }
    if len(rates) > 1:
        cell["attempts"], cell["attempts_failed_runs"] = rates, failed
    return cell


def _run(conc: int, exporter: dict[str, list[float]], dnsperf: dict[str, list[float]],
         failed: dict[str, list[int]] | None = None) -> dict[str, Any]:
    failed = failed or {}
    return {"concurrency": conc,
            "exporter": {p: _cell(exporter[p], failed.get(p)) for p in report.PHASES},
            "dnsperf": {p: _cell(dnsperf[p]) for p in report.PHASES},
            "baseline": {p: _cell([1.0]) for p in report.PHASES}}


def _verdict(runs: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    return next(v for v in report.verdicts(runs, None) if v["target"].endswith(f"{phase} dnsperf"))


def test_pairs_compare_the_tries_taken_together() -> None:
    # dnsperf's lucky second try (200) must not be set against the exporter's lucky first.
    runs = [_run(64, {"cold": [95.0, 180.0, 90.0], "warm": [40.0, 40.0, 40.0]},
                 {"cold": [100.0, 200.0, 100.0], "warm": [100.0, 100.0, 100.0]}),
            _run(256, {"cold": [80.0, 170.0, 92.0], "warm": [30.0, 30.0, 30.0]},
                 {"cold": [90.0, 150.0, 99.0], "warm": [90.0, 90.0, 90.0]})]
    assert report.paired_ratios(runs, "cold") == pytest.approx([0.95, 0.90, 0.92])
    cold = _verdict(runs, "cold")
    assert cold["value"] == pytest.approx(0.92) and cold["pass"]
    assert cold["best_ratio"] == pytest.approx(0.90)  # best against best: 180 of 200
    assert "median of 3 paired tries" in cold["measured"]


def test_a_cycle_with_failed_runs_is_no_throughput() -> None:
    runs = [_run(64, {"cold": [100.0, 100.0, 100.0], "warm": [50.0, 50.0, 50.0]},
                 {"cold": [100.0, 100.0, 100.0], "warm": [100.0, 100.0, 100.0]},
                 failed={"cold": [0, 3, 3]})]
    assert report.paired_ratios(runs, "cold") == [1.0, 0.0, 0.0]
    assert not _verdict(runs, "cold")["pass"]


def test_one_try_is_best_against_best() -> None:
    runs = [_run(64, {"cold": [90.0], "warm": [31.0]}, {"cold": [100.0], "warm": [100.0]}),
            _run(1024, {"cold": [85.0], "warm": [35.0]}, {"cold": [120.0], "warm": [90.0]})]
    cold, warm = _verdict(runs, "cold"), _verdict(runs, "warm")
    assert cold["value"] == pytest.approx(90 / 120) and not cold["pass"]
    assert warm["value"] == pytest.approx(0.35) and warm["pass"]
    assert "paired" not in cold["measured"]


def test_the_python_floor_is_paired_too_and_optional() -> None:
    runs = [_run(64, {"cold": [90.0, 80.0], "warm": [40.0, 40.0]},
                 {"cold": [100.0, 100.0], "warm": [100.0, 100.0]})]
    assert report.floor_text(runs) == ""  # measured before the floor existed
    runs[0]["floor"] = {"cold": _cell([99.0, 120.0]), "warm": _cell([70.0, 60.0])}
    assert report.paired_ratios(runs, "cold", "floor") == pytest.approx([0.99, 1.2])
    text = report.floor_text(runs)
    assert "python floor, cold: 109.5% of dnsperf" in text
    assert "python floor, warm: 65.0% of dnsperf" in text


def test_cells_as_the_harness_writes_them_pair_up() -> None:
    def tries(rates: list[float], failed: list[int] | None = None) -> dict[str, Any]:
        failed = failed or [0] * len(rates)
        return _best_attempt([dict(_cell([q]), failed_runs=f)
                              for q, f in zip(rates, failed, strict=True)])

    exporter = {"cold": tries([90.0, 50.0], [0, 2]), "warm": tries([40.0, 41.0])}
    dnsperf = {"cold": tries([100.0, 100.0]), "warm": tries([100.0, 100.0])}
    runs: list[dict[str, Any]] = [{"concurrency": 64, "exporter": exporter, "dnsperf": dnsperf}]
    assert runs[0]["exporter"]["cold"]["queries_per_second"] == 90.0  # the complete try
    assert report.paired_ratios(runs, "cold") == pytest.approx([0.9, 0.0])
    assert report.paired_ratios(runs, "warm") == pytest.approx([0.4, 0.41])


def test_tries_from_before_they_were_taken_together_are_not_paired() -> None:
    # Earlier harnesses ran every exporter try, then every dnsperf try, and kept only
    # the rates: index k of the two sides was not measured together.
    runs = [_run(64, {"cold": [90.0, 60.0], "warm": [40.0, 40.0]},
                 {"cold": [100.0, 80.0], "warm": [100.0, 100.0]})]
    for phase in report.PHASES:
        for tool in ("exporter", "dnsperf"):
            del runs[0][tool][phase]["attempts_failed_runs"]
    assert report.paired_ratios(runs, "cold") == []
    cold = _verdict(runs, "cold")
    assert cold["value"] == pytest.approx(0.9) and "paired" not in cold["measured"]


def test_the_resolver_cost_per_question_and_its_busy_share() -> None:
    def tries(rates: list[float], cpus: list[float],
              drops: list[int] | None = None) -> dict[str, Any]:
        cells = [dict(_cell([q]), queries_sent=1000, unbound_cpu_seconds=c)
                 for q, c in zip(rates, cpus, strict=True)]
        for cell, d in zip(cells, drops or [], strict=False):
            cell["udp_receive_drops"] = d
        return _best_attempt(cells)

    runs: list[dict[str, Any]] = [{
        "concurrency": 64,
        # 1,000 questions at 100 q/s take 10 s; unbound busy 9 of them is 9 ms a question.
        "dnsperf": {"cold": tries([100.0, 100.0], [9.0, 9.9], [0, 40]),
                    "warm": tries([500.0, 500.0], [0.5, 0.5])},
        "exporter": {"cold": tries([100.0, 50.0], [9.5, 19.0], [1200, 2000]),
                     "warm": tries([400.0, 400.0], [0.6, 0.6])},
    }]
    assert runs[0]["exporter"]["cold"]["attempts_unbound_cpu_seconds"] == [9.5, 19.0]
    assert runs[0]["exporter"]["cold"]["attempts_udp_receive_drops"] == [1200, 2000]
    text = report.resolver_text(runs)
    assert ("cold: unbound busy 90%–99% of the runs' wall time; its CPU per question: "
            "dnsperf 9,450 µs (9,000–9,900), 20 drops (0–40); "
            "exporter 14,250 µs (9,500–19,000), 1,600 drops (1,200–2,000)" in text), text
    # Drops not read (no /proc/net/snmp): the CPU is still reported.
    assert "warm: unbound busy 24%–25% of the runs' wall time; its CPU per question: " \
           "dnsperf 500 µs (500–500); exporter 600 µs (600–600)" in text, text
    # Results from before the harness read the resolver's CPU: nothing to say.
    del runs[0]["dnsperf"]["cold"]["attempts_unbound_cpu_seconds"]
    del runs[0]["exporter"]["cold"]["attempts_unbound_cpu_seconds"]
    assert "cold" not in report.resolver_text(runs)


def _render(runs: list[dict[str, Any]], render_set: dict[str, Any] | None) -> dict[str, Any]:
    return next(v for v in report.verdicts(runs, None, render_set)
                if v["target"].startswith("/metrics"))


def test_the_render_target_needs_its_series_count() -> None:
    runs = [_run(64, {"cold": [90.0], "warm": [31.0]}, {"cold": [100.0], "warm": [100.0]})]
    for phase in report.PHASES:
        runs[0]["exporter"][phase].update(series=242_132, render_first_seconds=0.5)
    # A fast render of fewer series than the target's does not show the target.
    short = _render(runs, None)
    assert not short["pass"] and "only 242,132 series" in short["measured"]
    big = {"senders": 10_400, "series": 251_000, "render_first_seconds": 0.6,
           "render_second_seconds": 0.1, "failed_runs": 0}
    verdict = _render(runs, big)
    assert verdict["pass"] and verdict["value"] == pytest.approx(0.6)
    assert verdict["measured"].startswith("0.600 s for 251,000 series (first render after "
                                          "a cycle of 10,400 senders); 0.500 s for 242,132")
    # Every render counts: a slow first render of a smaller cycle fails it too.
    runs[0]["exporter"]["warm"]["render_first_seconds"] = 1.2
    assert not _render(runs, big)["pass"]
    runs[0]["exporter"]["warm"]["render_first_seconds"] = 0.5
    # So does a larger set that fell short of the count, or did not finish its runs.
    assert not _render(runs, dict(big, series=249_999))["pass"]
    assert not _render(runs, dict(big, failed_runs=1))["pass"]


def test_extra_senders_follow_the_generated_ones() -> None:
    data = generate(3, 2)
    assert data.ips[-1] == "198.18.0.3"
    assert extra_senders(data, 2) == ["198.18.0.4", "198.18.0.5"]
    with pytest.raises(ValueError, match="do not fit"):
        extra_senders(data, 200_000)


def test_the_exporter_must_be_ahead_of_every_peer_in_both_phases() -> None:
    runs = [_run(64, {"cold": [90.0], "warm": [300.0]}, {"cold": [100.0], "warm": [400.0]}),
            _run(256, {"cold": [95.0], "warm": [280.0]}, {"cold": [100.0], "warm": [400.0]})]

    def peers_verdict() -> dict[str, Any] | None:
        return next((v for v in report.verdicts(runs, None)
                     if v["target"].startswith("cycle ahead")), None)

    # Only the baseline is required: without aiodns and pydnsbl the verdict names it alone.
    verdict = peers_verdict()
    assert verdict is not None and verdict["pass"]
    assert verdict["target"] == "cycle ahead of every Python peer measured (dnspython)"
    for run, aiodns, pydnsbl in ((runs[0], [20.0], [96.0]), (runs[1], [30.0], [60.0])):
        run["aiodns"] = {p: _cell(aiodns) for p in report.PHASES}
        run["pydnsbl"] = {p: _cell(pydnsbl) for p in report.PHASES}
    # pydnsbl's best cold (96 at 64) beats the exporter's best cold (95 at 256).
    verdict = peers_verdict()
    assert verdict is not None and not verdict["pass"]
    assert "cold 95 q/s against pydnsbl's 96" in verdict["measured"]
    assert report.peers_text(runs).splitlines()[0] == \
        "  cold: pydnsbl 96 q/s, aiodns 30 q/s, dnspython 1 q/s"
    runs[1]["exporter"]["cold"]["queries_per_second"] = 97.0
    verdict = peers_verdict()
    assert verdict is not None and verdict["pass"]
    assert verdict["target"].endswith("(dnspython, aiodns, pydnsbl)")


def test_the_render_set_counts_for_rss_and_a_skipped_one_says_why() -> None:
    runs = [_run(64, {"cold": [90.0], "warm": [31.0]}, {"cold": [100.0], "warm": [100.0]})]
    for phase in report.PHASES:
        runs[0]["exporter"][phase].update(series=242_132, peak_rss_mb=251.0)
    big = {"senders": 10_394, "series": 251_588, "render_first_seconds": 0.4,
           "render_second_seconds": 0.1, "failed_runs": 0, "peak_rss_mb": 301.0}
    rss = next(v for v in report.verdicts(runs, None, big) if v["target"].startswith("peak"))
    assert rss["measured"] == "251 MB (301 MB for the render set's 10,394 senders)"
    assert rss["value"] == 301.0 and not rss["pass"]
    skipped = {"series": 242_132, "skipped": "no render set of 250,000 series: too many"}
    render = _render(runs, skipped)
    assert not render["pass"] and render["measured"].endswith(
        "only 242,132 series, target is for 250,000 (no render set of 250,000 series: too many)")


def test_a_render_set_that_does_not_fit_is_not_run(tmp_path: Path) -> None:
    # One zone: 250,000 series would need more senders than 198.18.0.0/15 holds.
    got = measure_render_set(generate(10, 1), 53, 64, 20, 250_000, tmp_path)
    assert got is not None and got["skipped"].startswith("no render set of 250,000 series")
    assert not list(tmp_path.iterdir())  # no exporter config written, no cycle run
    assert measure_render_set(generate(10, 1), 53, 64, 300_000, 250_000, tmp_path) is None
