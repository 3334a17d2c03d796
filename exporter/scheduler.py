"""One loop that keeps every (check, target) evaluated at its interval.

Each pair has its own task (the targets of a :class:`BatchCheck` share one per
batch, see ``Scheduler.apply``): a first run soon after start (spread by jitter),
then one run per interval. A run never overlaps itself: when one takes longer
than the interval, the slots it missed are skipped and counted as overruns,
never queued. Every run has a timeout; a timed-out run is a failed run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from exporter.checks.base import BatchCheck, Check, CheckContext, Findings, Result, Target
from exporter.config import Config
from exporter.dns import LookupFailed
from exporter.limiter import Limiter
from exporter.store import Key, Store

log = logging.getLogger("exporter.scheduler")

#: The first run of every pair starts within this many seconds (times the jitter share).
FIRST_RUN_SPREAD = 2.0


async def run_once(
    check: Check, target: Target, ctx: CheckContext, timeout: float,
    clock: Callable[[], float] = time.time,
) -> Result:
    """Run one check on one target and classify how it went. Used by scheduler and /probe."""
    started = time.perf_counter()
    outcome: Findings | Exception
    try:
        # asyncio.timeout, not wait_for: wait_for on 3.11 can swallow a cancellation
        # that arrives as the run finishes, and the loop would then never stop.
        async with asyncio.timeout(timeout):
            outcome = await check.run(target, ctx)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # classified below; a bug in a check must not stop the others
        outcome = exc
    return _result(check, target, outcome, time.perf_counter() - started, clock(), timeout)


async def run_batch_once(
    check: BatchCheck, targets: Sequence[Target], ctx: CheckContext, timeout: float,
    clock: Callable[[], float] = time.time,
) -> list[Result]:
    """``run_once`` for several targets in one run of a :class:`BatchCheck`.

    Each target's result is its own (its findings, or its own failure); only a
    timeout or an exception of the run as a whole fails them all.
    """
    started = time.perf_counter()
    outcomes: Sequence[Findings | Exception]
    try:
        async with asyncio.timeout(timeout):
            outcomes = await check.run_batch(targets, ctx)
        if len(outcomes) != len(targets):
            raise RuntimeError(f"{len(outcomes)} outcomes for {len(targets)} targets")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        outcomes = [exc] * len(targets)
    duration, timestamp = time.perf_counter() - started, clock()
    return [_result(check, target, outcome, duration, timestamp, timeout)
            for target, outcome in zip(targets, outcomes, strict=True)]


def _result(check: Check, target: Target, outcome: Findings | Exception, duration: float,
            timestamp: float, timeout: float) -> Result:
    """How a run went: its findings, or why it failed (then with no samples at all)."""
    if isinstance(outcome, Findings):
        findings = outcome
        errors = tuple(findings.errors)
    else:
        findings = Findings()  # nothing from a run that could not classify its answers
        if isinstance(outcome, LookupFailed):
            errors = (f"lookup failed: {outcome}",)
        elif isinstance(outcome, TimeoutError):
            errors = (f"run timed out after {timeout:g}s",)
        else:
            log.error("check %s on %s crashed", check.name, target.key, exc_info=outcome)
            errors = (f"internal error: {type(outcome).__name__}: {outcome}",)
    return Result(
        check=check.name,
        target=target.key,
        success=not errors,
        duration=duration,
        timestamp=timestamp,
        samples=tuple(findings.samples),
        errors=errors,
        findings=tuple(findings.findings),
        exclusive=findings.exclusive,
    )


def batch_size(check: Check) -> int:
    """How many targets of this check share a run (1: a run each)."""
    size = getattr(check, "batch_size", 1)
    return size if isinstance(size, int) and size > 1 else 1


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Prometheus' hashmod on the target: the last 8 bytes of its MD5, modulo N.

    The same function as ``relabel_configs: [{action: hashmod, source_labels:
    [__param_target], modulus: N}]``, so /probe sharding and --shard agree.
    """
    index, count = shard
    if count <= 1:
        return True
    digest = hashlib.md5(key.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % count == index


@dataclass(slots=True, eq=False)
class _Job:
    check: Check
    target: Target
    done_first: bool = False
    #: How the previous run went (None before the first): failures are logged when they start.
    last_success: bool | None = None
    #: The schedule this target is run on (set when it is planned).
    cohort: _Cohort | None = None


@dataclass(slots=True, eq=False)
class _Cohort:
    """Targets run together, on one schedule, by one task: a single target, or a batch
    of a :class:`BatchCheck`'s targets (``batched``)."""

    check: Check
    jobs: list[_Job]
    batched: bool = False
    task: asyncio.Task[None] | None = None


@dataclass
class Scheduler:
    checks: Sequence[Check]
    store: Store
    context: CheckContext
    #: (I, N): run only the targets in shard I of N (see ``in_shard``).
    shard: tuple[int, int] = (0, 1)
    overruns: Counter[str] = field(default_factory=Counter)
    _jobs: dict[Key, _Job] = field(default_factory=dict)
    _cohorts: set[_Cohort] = field(default_factory=set)
    _started: bool = False
    _pending_first: int = 0
    _admission: Limiter | None = None
    _admission_size: int = 0

    @property
    def config(self) -> Config:
        return self.context.config

    def planned(self, config: Config) -> dict[Key, tuple[Check, Target]]:
        plan: dict[Key, tuple[Check, Target]] = {}
        for check in self.checks:
            for target in check.targets(config):
                if target.param("kind") != "zone" and not in_shard(target.key, self.shard):
                    continue  # another replica's; zone health runs on every replica
                plan[(check.name, target.key)] = (check, target)
        return plan

    def apply(self, context: CheckContext) -> None:
        """Swap in a new context (config): start new pairs, stop removed ones, keep the rest.

        A pair whose target is unchanged keeps its task (so its schedule) and its results.
        New targets of a :class:`BatchCheck` are grouped into batches of their own; a
        removed target leaves its batch, which keeps its schedule for the others.
        """
        self.context = context
        plan = self.planned(context.config)
        for key in [k for k in self._jobs if k not in plan or self._jobs[k].target != plan[k][1]]:
            job = self._jobs.pop(key)
            if not job.done_first:
                self._pending_first -= 1
            if job.cohort is not None:
                self._leave(job, job.cohort)
        # Removed pairs, and pairs whose target changed its parameters, lose their results.
        self.store.retain(k for k in plan if k in self._jobs)
        forming: dict[str, _Cohort] = {}  # by check: the batch new targets join
        for key, (check, target) in plan.items():
            if key in self._jobs:
                job = self._jobs[key]
                job.check = check
                if job.cohort is not None:
                    job.cohort.check = check
                continue
            job = _Job(check, target)
            self._jobs[key] = job
            self._pending_first += 1
            size = batch_size(check)
            if size > 1 and cast(BatchCheck, check).batchable(target):
                cohort = forming.get(check.name)
                if cohort is None or len(cohort.jobs) >= size:
                    cohort = forming[check.name] = _Cohort(check, [], batched=True)
                    self._cohorts.add(cohort)
                cohort.jobs.append(job)
            else:
                cohort = _Cohort(check, [job])
                self._cohorts.add(cohort)
            job.cohort = cohort
        if self._started:
            self._start_cohorts()

    def _leave(self, job: _Job, cohort: _Cohort) -> None:
        cohort.jobs.remove(job)
        job.cohort = None
        if not cohort.jobs:
            self._cohorts.discard(cohort)
            if cohort.task is not None:
                cohort.task.cancel()

    def start(self) -> None:
        self._started = True
        self._start_cohorts()

    def _start_cohorts(self) -> None:
        for cohort in self._cohorts:
            if cohort.task is None:
                cohort.task = asyncio.create_task(
                    self._cohort_loop(cohort), name=f"{cohort.check.name}:{_members(cohort)}")

    async def stop(self) -> None:
        tasks = [c.task for c in self._cohorts if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def ready(self) -> bool:
        """True once every (check, target) has finished its first run."""
        return self._pending_first == 0

    def pending_first_runs(self) -> int:
        return self._pending_first

    def _admit(self) -> Limiter:
        """The window of runs in progress: ten thousand senders must not all run at once.

        Without it every first run starts together, hundreds of thousands of tasks
        hold memory and stall the loop past the DNS timeouts. A batch takes a slot
        per target.
        """
        size = self.config.scheduler.max_concurrent_runs
        if self._admission is None or size != self._admission_size:
            self._admission = Limiter(size)
            self._admission_size = size
        return self._admission

    def run_timeout(self) -> float:
        return self.config.scheduler.run_timeout

    def _log_result(self, job: _Job, result: Result) -> None:
        """Failures at warning level when they start, recoveries at info, the rest at debug:
        a dead list must not write ten thousand warnings per cycle."""
        check, key = job.check.name, job.target.key
        if result.success:
            level = logging.INFO if job.last_success is False else logging.DEBUG
            log.log(level, "check=%s target=%s ok duration=%.3fs samples=%d%s", check, key,
                    result.duration, len(result.samples),
                    " (recovered)" if job.last_success is False else "")
        else:
            level = logging.WARNING if job.last_success is not False else logging.DEBUG
            log.log(level, "check=%s target=%s failed: %s", check, key,
                    "; ".join(result.errors)[:500])
        job.last_success = result.success

    def _record(self, job: _Job, result: Result) -> None:
        if self._jobs.get((job.check.name, job.target.key)) is not job:
            return  # removed by a reload while it ran: its result must not come back
        self.store.update(result)
        if not job.done_first:
            job.done_first = True
            self._pending_first -= 1
        self._log_result(job, result)

    def _next_start(self, check: Check, what: str, runs: int, duration: float,
                    next_start: float, interval: float, now: float) -> float:
        """The slot after ``next_start``; the slots a long run missed are skipped and
        counted (``runs`` per slot: the targets of a batch)."""
        next_start += interval
        if now > next_start:
            missed = int((now - next_start) // interval) + 1
            self.overruns[check.name] += missed * runs
            log.warning("check=%s target=%s run took %.1fs, longer than its %gs "
                        "interval: skipping %d run(s)", check.name, what, duration,
                        interval, missed)
            next_start += missed * interval
        return next_start

    async def _cohort_loop(self, cohort: _Cohort) -> None:
        check = cohort.check
        jitter = self.config.scheduler.jitter
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.random() * jitter * FIRST_RUN_SPREAD)
        next_start = loop.time()
        while cohort.jobs:
            interval = check.interval(self.config)
            jobs = list(cohort.jobs)
            # A batch takes a slot of the admission window per target, as their own
            # runs would (a batch left small by reloads takes only what it holds).
            admission, weight = self._admit(), len(jobs)
            await admission.acquire(weight)
            try:
                if cohort.batched:
                    results = await run_batch_once(
                        cast(BatchCheck, check), [job.target for job in jobs], self.context,
                        self.run_timeout())
                else:
                    results = [await run_once(check, jobs[0].target, self.context,
                                              self.run_timeout())]
            finally:
                admission.release(weight)
            for job, result in zip(jobs, results, strict=True):
                self._record(job, result)
            now = loop.time()
            next_start = self._next_start(check, _members(cohort), len(jobs),
                                          results[0].duration, next_start, interval, now)
            delay = next_start - now + random.uniform(0, jitter * interval * 0.1)
            await asyncio.sleep(max(0.0, delay))


def _members(cohort: _Cohort) -> str:
    """The targets of a schedule, for task names and logs."""
    first = cohort.jobs[0].target.key if cohort.jobs else "(none)"
    return first if len(cohort.jobs) == 1 else f"{first} and {len(cohort.jobs) - 1} more"
