"""One loop that keeps every (check, target) evaluated at its interval.

Each pair has its own task: a first run soon after start (spread by jitter),
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

from exporter.checks.base import Check, CheckContext, Findings, Result, Target
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
    findings = Findings()
    errors: list[str] = []
    try:
        # asyncio.timeout, not wait_for: wait_for on 3.11 can swallow a cancellation
        # that arrives as the run finishes, and the loop would then never stop.
        async with asyncio.timeout(timeout):
            findings = await check.run(target, ctx)
        errors = list(findings.errors)
    except LookupFailed as exc:
        errors = [f"lookup failed: {exc}"]
        findings = Findings()  # nothing from a run that could not classify its answers
    except TimeoutError:
        errors = [f"run timed out after {timeout:g}s"]
        findings = Findings()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug in a check must not stop the others
        log.exception("check %s on %s crashed", check.name, target.key)
        errors = [f"internal error: {type(exc).__name__}: {exc}"]
        findings = Findings()
    duration = time.perf_counter() - started
    return Result(
        check=check.name,
        target=target.key,
        success=not errors,
        duration=duration,
        timestamp=clock(),
        samples=tuple(findings.samples),
        errors=tuple(errors),
        findings=tuple(findings.findings),
        exclusive=findings.exclusive,
    )


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


@dataclass(slots=True)
class _Job:
    check: Check
    target: Target
    task: asyncio.Task[None] | None = None
    done_first: bool = False
    #: How the previous run went (None before the first): failures are logged when they start.
    last_success: bool | None = None


@dataclass
class Scheduler:
    checks: Sequence[Check]
    store: Store
    context: CheckContext
    #: (I, N): run only the targets in shard I of N (see ``in_shard``).
    shard: tuple[int, int] = (0, 1)
    overruns: Counter[str] = field(default_factory=Counter)
    _jobs: dict[Key, _Job] = field(default_factory=dict)
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
        """
        self.context = context
        plan = self.planned(context.config)
        for key in [k for k in self._jobs if k not in plan or self._jobs[k].target != plan[k][1]]:
            job = self._jobs.pop(key)
            if not job.done_first:
                self._pending_first -= 1
            if job.task is not None:
                job.task.cancel()
        # Removed pairs, and pairs whose target changed its parameters, lose their results.
        self.store.retain(k for k in plan if k in self._jobs)
        for key, (check, target) in plan.items():
            if key in self._jobs:
                self._jobs[key].check = check
                continue
            job = _Job(check, target)
            self._jobs[key] = job
            self._pending_first += 1
            if self._started:
                job.task = asyncio.create_task(self._loop(job), name=f"{key[0]}:{key[1]}")

    def start(self) -> None:
        self._started = True
        for key, job in self._jobs.items():
            if job.task is None:
                job.task = asyncio.create_task(self._loop(job), name=f"{key[0]}:{key[1]}")

    async def stop(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task is not None]
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
        hold memory and stall the loop past the DNS timeouts.
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

    async def _loop(self, job: _Job) -> None:
        check, target = job.check, job.target
        jitter = self.config.scheduler.jitter
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.random() * jitter * FIRST_RUN_SPREAD)
        next_start = loop.time()
        while True:
            interval = check.interval(self.config)
            async with self._admit():
                result = await run_once(check, target, self.context, self.run_timeout())
            if self._jobs.get((check.name, target.key)) is not job:
                return  # removed by a reload while it ran: its result must not come back
            self.store.update(result)
            if not job.done_first:
                job.done_first = True
                self._pending_first -= 1
            self._log_result(job, result)
            next_start += interval
            now = loop.time()
            if now > next_start:
                missed = int((now - next_start) // interval) + 1
                self.overruns[check.name] += missed
                log.warning("check=%s target=%s run took %.1fs, longer than its %gs "
                            "interval: skipping %d run(s)", check.name, target.key,
                            result.duration, interval, missed)
                next_start += missed * interval
            delay = next_start - now + random.uniform(0, jitter * interval * 0.1)
            await asyncio.sleep(max(0.0, delay))
