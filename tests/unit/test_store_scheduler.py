"""Store and scheduler: failures keep the last good values, runs never overlap or pile up."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import Sequence
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.checks.base import CheckContext, Findings, MetricSpec, Result, Sample, Target
from exporter.config import Config, parse_config_text
from exporter.dns import Answer, LookupFailed, Outcome
from exporter.scheduler import Scheduler
from exporter.store import Store
from tests.fakes import FakeResolver


def result(success: bool, samples: Sequence[Sample], ts: float) -> Result:
    return Result("c", "t", success, 0.1, ts, tuple(samples), () if success else ("boom",))


def s(metric: str, value: float, **labels: str) -> Sample:
    return Sample(metric, tuple(sorted(labels.items())), value)


def test_failed_run_keeps_last_good_values_and_timestamp() -> None:
    store = Store()
    store.update(result(True, [s("m", 1, zone="a"), s("m", 0, zone="b")], 100.0))
    entry = store.update(result(False, [s("m", 1, zone="b")], 200.0))
    assert not entry.success
    assert entry.last_success == 100.0
    assert {k[1]: v.value for k, v in entry.samples.items()} == {
        (("zone", "a"),): 1, (("zone", "b"),): 1}
    entry = store.update(result(True, [s("m", 0, zone="a")], 300.0))
    assert entry.last_success == 300.0
    assert len(entry.samples) == 1  # a complete run replaces everything


def test_first_failed_run_has_no_last_success() -> None:
    entry = Store().update(result(False, [], 1.0))
    assert entry.last_success is None


class SlowCheck:
    name: ClassVar[str] = "slow"
    metrics: ClassVar[Sequence[MetricSpec]] = (MetricSpec("deliverability_slow", "x", ()),)

    def __init__(self, delay: float, interval: float) -> None:
        self.delay = delay
        self._interval = interval
        self.running = 0
        self.max_running = 0
        self.runs = 0

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, "t")]

    def interval(self, config: Config) -> float:
        return self._interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.runs += 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        f = Findings()
        f.add("deliverability_slow", 1)
        return f


def ctx(config: Config | None = None) -> CheckContext:
    return CheckContext(FakeResolver(), config or parse_config_text(
        "scheduler: {jitter: 0, run_timeout: 1s}"), logging.getLogger("t"))


async def test_overrunning_runs_are_skipped_and_counted_never_overlapped() -> None:
    check = SlowCheck(delay=0.25, interval=0.1)
    scheduler = Scheduler([check], Store(), ctx())
    scheduler.apply(scheduler.context)
    scheduler.start()
    await asyncio.sleep(0.9)
    await scheduler.stop()
    assert check.max_running == 1
    assert 2 <= check.runs <= 4
    assert scheduler.overruns["slow"] >= 2


async def test_run_timeout_is_a_failure() -> None:
    check = SlowCheck(delay=5, interval=10)
    store = Store()
    scheduler = Scheduler([check], store, ctx())
    scheduler.apply(scheduler.context)
    scheduler.start()
    for _ in range(50):
        await asyncio.sleep(0.05)
        if scheduler.ready():
            break
    await scheduler.stop()
    entry = store.get("slow", "t")
    assert entry is not None and not entry.success
    assert "timed out" in entry.errors[0]


class FailingCheck(SlowCheck):
    name: ClassVar[str] = "failing"

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        raise LookupFailed(Answer("x.example", "TXT", Outcome.TIMEOUT))


async def test_lookup_failure_marks_the_run_failed_and_ready_still_turns_true() -> None:
    store = Store()
    scheduler = Scheduler([FailingCheck(0, 10)], store, ctx())
    scheduler.apply(scheduler.context)
    assert not scheduler.ready()
    scheduler.start()
    for _ in range(40):
        await asyncio.sleep(0.05)
        if scheduler.ready():
            break
    await scheduler.stop()
    assert scheduler.ready()
    entry = store.get("failing", "t")
    assert entry is not None and "TXT x.example: timeout" in entry.errors[0]


async def test_reload_keeps_unchanged_targets_and_drops_removed_ones() -> None:
    base = "scheduler: {jitter: 0}\nptr: {interval: 1h}\ndnsbl: {zones: []}\n"
    one = parse_config_text(base + "senders: [192.0.2.1, 192.0.2.2]")
    exporter = Exporter(one)
    store = exporter.store
    store.update(Result("ptr", "192.0.2.1", True, 0.1, 1.0, (s("deliverability_ptr_present", 1,
                                                                 ip="192.0.2.1"),)))
    store.update(Result("ptr", "192.0.2.2", True, 0.1, 1.0, ()))
    exporter.apply_config(parse_config_text(base + "senders: [192.0.2.1, 192.0.2.3]"))
    assert store.get("ptr", "192.0.2.1") is not None  # unchanged: kept
    assert store.get("ptr", "192.0.2.2") is None  # removed: gone
    assert ("ptr", "192.0.2.3") in exporter.scheduler.planned(exporter.config)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
def test_metrics_output_passes_promtool_lint() -> None:
    config = parse_config_text("dnsbl: {zones: [bl.example]}\nsenders: [192.0.2.1]")
    exporter = Exporter(config)
    exporter.store.update(Result("dnsbl", "192.0.2.1", True, 0.1, 1.0, (
        s("deliverability_dnsbl_listed", 1, ip="192.0.2.1", zone="bl.example"),
        s("deliverability_dnsbl_listing_info", 1, ip="192.0.2.1", zone="bl.example",
          code="127.0.0.2", reason='say "hi"\\ there'),
    )))
    body = exporter.render_metrics()
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert lint.returncode == 0 and not lint.stdout and not lint.stderr, lint.stdout + lint.stderr
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert "(cached" in families["deliverability_dnsbl_listed"].documentation
    assert families["deliverability_dns_queries"].type == "counter"


def test_series_reported_by_two_shared_targets_appear_once_newest_wins() -> None:
    exporter = Exporter(parse_config_text("dnsbl: {zones: [bl.example]}"))
    for target, ts, value in (("a.example", 1.0, 0), ("b.example", 2.0, 1)):
        exporter.store.update(Result(
            "ptr", target, True, 0.1, ts,
            (s("deliverability_ptr_present", value, ip="192.0.2.1"),), exclusive=False))
    body = exporter.render_metrics().decode()
    lines = [ln for ln in body.splitlines() if ln.startswith("deliverability_ptr_present{")]
    assert lines == ['deliverability_ptr_present{ip="192.0.2.1"} 1.0']


def test_label_values_are_escaped() -> None:
    exporter = Exporter(parse_config_text("dnsbl: {zones: [bl.example]}"))
    exporter.store.update(Result("dnsbl", "192.0.2.1", True, 0.1, 1.0, (
        s("deliverability_dnsbl_listing_info", 1, ip="192.0.2.1", zone="bl.example",
          code="127.0.0.2", reason='a "quoted"\\ line\nbreak'),)))
    body = exporter.render_metrics().decode()
    assert 'reason="a \\"quoted\\"\\\\ line\\nbreak"' in body


async def test_admission_window_bounds_runs_in_progress() -> None:
    class Many(SlowCheck):
        name: ClassVar[str] = "many"

        def targets(self, config: Config) -> list[Target]:
            return [Target(self.name, f"t{i}") for i in range(40)]

    check = Many(delay=0.05, interval=60)
    config = parse_config_text("scheduler: {jitter: 0, run_timeout: 5s, max_concurrent_runs: 4}")
    scheduler = Scheduler([check], Store(), ctx(config))
    scheduler.apply(scheduler.context)
    assert scheduler.pending_first_runs() == 40
    scheduler.start()
    for _ in range(100):
        await asyncio.sleep(0.05)
        if scheduler.ready():
            break
    await scheduler.stop()
    assert scheduler.ready()
    assert check.max_running == 4


class Batched(SlowCheck):
    """Targets b0..b8 run in batches of four; "solo" runs alone; "bad" fails on its own."""

    name: ClassVar[str] = "batched"
    batch_size: ClassVar[int] = 4

    def __init__(self, delay: float, interval: float, keys: Sequence[str] = ()) -> None:
        super().__init__(delay, interval)
        self.keys = list(keys) or [f"b{i}" for i in range(9)] + ["solo"]
        self.batches: list[list[str]] = []
        self.singles: list[str] = []

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, key) for key in self.keys]

    def batchable(self, target: Target) -> bool:
        return target.key != "solo"

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        self.singles.append(target.key)
        return await super().run(target, ctx)

    async def run_batch(self, targets: Sequence[Target],
                        ctx: CheckContext) -> list[Findings | Exception]:
        self.batches.append([t.key for t in targets])
        await SlowCheck.run(self, targets[0], ctx)
        outcomes: list[Findings | Exception] = []
        for target in targets:
            if target.key == "bad":
                outcomes.append(LookupFailed(Answer("bad.example", "A", Outcome.SERVFAIL)))
                continue
            findings = Findings()
            findings.add("deliverability_slow", 1, target=target.key)
            outcomes.append(findings)
        return outcomes


async def _until_ready(scheduler: Scheduler, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if scheduler.ready():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{scheduler.pending_first_runs()} first runs still pending")


async def test_batchable_targets_run_together_and_keep_results_of_their_own() -> None:
    check = Batched(0.01, 60, [*(f"b{i}" for i in range(8)), "bad", "solo"])
    store = Store()
    scheduler = Scheduler([check], store, ctx())
    scheduler.apply(scheduler.context)
    assert scheduler.pending_first_runs() == 10
    scheduler.start()
    await _until_ready(scheduler)
    await scheduler.stop()
    assert sorted(len(b) for b in check.batches) == [1, 4, 4]
    assert sorted(k for b in check.batches for k in b) == sorted([*(f"b{i}" for i in range(8)),
                                                                  "bad"])
    assert check.singles == ["solo"]
    for key in [f"b{i}" for i in range(8)] + ["solo"]:
        entry = store.get("batched", key)
        assert entry is not None and entry.success, key
    b3 = store.get("batched", "b3")
    assert b3 is not None and list(b3.samples) == [
        ("deliverability_slow", (("target", "b3"),))]  # its own samples, not its batch's
    bad = store.get("batched", "bad")
    assert bad is not None and not bad.success and "lookup failed" in bad.errors[0]


async def test_a_batch_that_times_out_fails_each_of_its_targets() -> None:
    check = Batched(5, 60, ["b0", "b1", "b2"])
    store = Store()
    scheduler = Scheduler([check], store, ctx())  # run_timeout: 1s
    scheduler.apply(scheduler.context)
    scheduler.start()
    await _until_ready(scheduler)
    await scheduler.stop()
    for key in ("b0", "b1", "b2"):
        entry = store.get("batched", key)
        assert entry is not None and not entry.success
        assert entry.errors == ("run timed out after 1s",)


async def test_a_batch_that_crashes_fails_its_targets_and_no_other() -> None:
    class Crashing(Batched):
        async def run_batch(self, targets: Sequence[Target],
                            ctx: CheckContext) -> list[Findings | Exception]:
            if any(t.key == "b0" for t in targets):
                raise RuntimeError("a bug")
            return await super().run_batch(targets, ctx)

    check = Crashing(0, 60, ["b0", "b1", "b2", "b3", "b4"])
    store = Store()
    scheduler = Scheduler([check], store, ctx())
    scheduler.apply(scheduler.context)
    scheduler.start()
    await _until_ready(scheduler)
    await scheduler.stop()
    failed = sorted(e.target for e in store.snapshot() if not e.success)
    assert failed == ["b0", "b1", "b2", "b3"]
    first = store.get("batched", "b0")
    assert first is not None and first.errors == ("internal error: RuntimeError: a bug",)
    last = store.get("batched", "b4")
    assert last is not None and last.success


async def test_overruns_of_a_batch_count_each_of_its_targets() -> None:
    check = Batched(0.25, 0.1, ["b0", "b1", "b2"])
    scheduler = Scheduler([check], Store(), ctx())
    scheduler.apply(scheduler.context)
    scheduler.start()
    await asyncio.sleep(0.9)
    await scheduler.stop()
    assert check.max_running == 1  # one batch, never overlapping itself
    assert 2 <= len(check.batches) <= 4
    assert scheduler.overruns["batched"] >= 2 * 3
    assert scheduler.overruns["batched"] % 3 == 0


async def test_reload_keeps_a_batch_for_its_remaining_targets_and_batches_new_ones() -> None:
    check = Batched(0, 0.2, ["b0", "b1", "b2"])
    store = Store()
    scheduler = Scheduler([check], store, ctx())
    scheduler.apply(scheduler.context)
    scheduler.start()
    await _until_ready(scheduler)
    first_task = next(iter(scheduler._cohorts)).task
    check.keys = ["b0", "b2", "n0", "n1"]
    scheduler.apply(ctx())
    assert store.get("batched", "b1") is None  # removed: its results go
    await _until_ready(scheduler)
    check.batches.clear()
    await asyncio.sleep(0.5)
    runs = {tuple(b) for b in check.batches}
    assert runs == {("b0", "b2"), ("n0", "n1")}
    assert any(c.task is first_task for c in scheduler._cohorts)  # its schedule kept
    check.keys = []
    scheduler.apply(ctx())
    await asyncio.sleep(0.01)
    assert not scheduler._cohorts
    assert first_task is not None and first_task.cancelled()
    await scheduler.stop()


async def test_batches_of_runs_take_their_targets_worth_of_the_admission_window() -> None:
    check = Batched(0.05, 60, [f"b{i}" for i in range(40)])
    config = parse_config_text("scheduler: {jitter: 0, run_timeout: 5s, max_concurrent_runs: 8}")
    scheduler = Scheduler([check], Store(), ctx(config))
    scheduler.apply(scheduler.context)
    scheduler.start()
    await _until_ready(scheduler)
    await scheduler.stop()
    assert len(check.batches) == 10
    assert check.max_running == 2  # 8 runs' worth: two batches of four


async def test_batches_and_single_runs_share_one_admission_window() -> None:
    check = Batched(0.05, 60, [f"b{i}" for i in range(16)])
    solo = SlowCheck(0.05, 60)
    config = parse_config_text("scheduler: {jitter: 0, run_timeout: 5s, max_concurrent_runs: 6}")
    scheduler = Scheduler([check, solo], Store(), ctx(config))
    scheduler.apply(scheduler.context)
    busy: list[int] = []
    scheduler.start()
    while not scheduler.ready():
        # Targets in progress: four per batch under way, one per single run.
        busy.append(4 * check.running + solo.running)
        await asyncio.sleep(0.005)
    await scheduler.stop()
    assert max(busy) <= 6  # a batch of four and the single run fit; two batches do not
    assert check.max_running == 1
